/**
 * Every error packptq raises on purpose is a PackPtqError with a stable `code`, so callers can
 * branch on the code instead of parsing messages. Messages name the file, node or option at fault.
 */
/** The stable `code` of every {@link PackPtqError}; branch on it rather than on messages. */
export type ErrorCode =
  | 'ONNX_DECODE'
  | 'ONNX_EXTERNAL_DATA'
  | 'UNSUPPORTED_OP'
  | 'UNSUPPORTED_MODEL'
  | 'BAD_GRAPH'
  | 'SHAPE_MISMATCH'
  | 'BAD_DATA'
  | 'BAD_OPTION'
  | 'NATIVE'
  | 'IO'
  | 'ABORT_ERR';

/** Base class of every error packptq raises on purpose. `name` is the subclass's name. */
export class PackPtqError extends Error {
  /** Stable machine-readable code (see {@link ErrorCode}). */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options as ErrorOptions);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The model file cannot be decoded as ONNX (truncated, not protobuf, wrong structure). */
export class OnnxDecodeError extends PackPtqError {
  constructor(message: string, options?: { cause?: unknown }) { super('ONNX_DECODE', message, options); }
}
/** A tensor stored outside the model file; packptq reads single-file models only. */
export class ExternalDataError extends PackPtqError {
  constructor(message: string) { super('ONNX_EXTERNAL_DATA', message); }
}
/** An op, or an op's attribute or data type, that the engine does not run. */
export class UnsupportedOpError extends PackPtqError {
  constructor(message: string) { super('UNSUPPORTED_OP', message); }
}
/** A model-level feature that is not supported (several inputs of data, non-float input, ...). */
export class UnsupportedModelError extends PackPtqError {
  constructor(message: string) { super('UNSUPPORTED_MODEL', message); }
}
/** A structurally broken graph: cycles, dangling inputs, duplicate outputs. */
export class BadGraphError extends PackPtqError {
  constructor(message: string) { super('BAD_GRAPH', message); }
}
/** Shapes that do not fit together (in the graph, or between data and the model input). */
export class ShapeMismatchError extends PackPtqError {
  constructor(message: string) { super('SHAPE_MISMATCH', message); }
}
/** A data file that is not what it claims to be (wrong magic, wrong size, wrong dtype). */
export class BadDataError extends PackPtqError {
  constructor(message: string) { super('BAD_DATA', message); }
}
/** An option value that cannot work; raised before any work starts. */
export class BadOptionError extends PackPtqError {
  constructor(message: string) { super('BAD_OPTION', message); }
}
/** A failure reported by the native addon that has no more specific class. */
export class NativeError extends PackPtqError {
  constructor(message: string) { super('NATIVE', message); }
}
/** A file that cannot be read or written. */
export class IoError extends PackPtqError {
  constructor(message: string, options?: { cause?: unknown }) { super('IO', message, options); }
}
/** A run cancelled through its AbortSignal. Code ABORT_ERR as in Node's own AbortError. */
export class AbortError extends PackPtqError {
  constructor(message = 'The operation was aborted') { super('ABORT_ERR', message); }
}

/** One message shape for argument checks: "Expected X for NAME but received Y". */
export function expected(what: string, name: string, received: unknown): BadOptionError {
  return new BadOptionError(`Expected ${what} for ${name} but received ${describe(received)}`);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  return String(v);
}
