/**
 * Writing ONNX: plain model objects → bytes. Field order, packing and presence follow the schema,
 * so an untouched decoded model is written back byte for byte.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'fs';
import { dirname, basename, join } from 'path';
import * as protobuf from 'protobufjs';
import { BadGraphError, IoError } from '../errors';
import { ModelProto, TensorProto, onnxType } from './schema';

/** Encode a model. Throws BadGraphError when the object does not fit the ONNX schema. */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage('ModelProto', model, 'model');
}

/** Encode a standalone TensorProto (the .pb format of the ONNX conformance test data). */
export function encodeTensor(tensor: TensorProto): Uint8Array {
  return encodeMessage('TensorProto', tensor, `tensor '${tensor.name ?? ''}'`);
}

/**
 * Encode and write a model atomically: a temporary file in the same folder, flushed, then renamed
 * over the target, so a crash or a full disk never leaves a half-written model behind.
 */
export function saveModelFile(path: string, model: ModelProto): void {
  const bytes = encodeModel(model);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* never created */ }
    throw new IoError(`Cannot write ONNX model ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function encodeMessage(typeName: string, value: object, what: string): Uint8Array {
  const type = onnxType(typeName);
  let wire: Record<string, unknown>;
  try {
    wire = toWire(type, value as Record<string, unknown>, typeName);
  } catch (err) {
    if (err instanceof BadGraphError) throw err;
    throw new BadGraphError(`Cannot encode ${what}: ${(err as Error).message}`);
  }
  // verify() catches wrong JS types (a string where a number belongs) that encode() would
  // otherwise turn into garbage bytes without complaint.
  const problem = type.verify(wire);
  if (problem) throw new BadGraphError(`Cannot encode ${what}: ${problem}`);
  return type.encode(wire).finish();
}

/**
 * A copy of the plain object that protobufjs can encode: bigints become Long-like {low, high}
 * (protobufjs writes numbers, strings and Longs, not bigints). Bytes and number arrays are shared,
 * not copied. Raw bytes of unknown fields ride along.
 */
function toWire(type: protobuf.Type, obj: Record<string, unknown>, path: string): Record<string, unknown> {
  if (obj === null || typeof obj !== 'object') throw new BadGraphError(`Cannot encode ${path}: expected an object but received ${String(obj)}`);
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const value = obj[field.name];
    if (value === undefined || value === null) continue;
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    const at = `${path}.${field.name}`;
    if (field.repeated) {
      if (!Array.isArray(value)) throw new BadGraphError(`Cannot encode ${at}: expected an array but received ${typeof value}`);
      if (sub) out[field.name] = value.map((v, i) => toWire(sub, v, `${at}[${i}]`));
      else if (field.long && value.some((v) => typeof v === 'bigint')) out[field.name] = value.map(longBits);
      else out[field.name] = value;
    } else if (sub) {
      out[field.name] = toWire(sub, value as Record<string, unknown>, at);
    } else {
      out[field.name] = field.long ? longBits(value) : value;
    }
  }
  const unknowns = (obj as { $unknowns?: Uint8Array[] }).$unknowns;
  if (unknowns && unknowns.length) out.$unknowns = unknowns;
  return out;
}

function longBits(v: unknown): unknown {
  if (typeof v !== 'bigint') return v;
  const bits = BigInt.asUintN(64, v);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: false };
}
