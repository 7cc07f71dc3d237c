/** A compiled native Program, with native failures raised as packptq's typed errors. */
import {
  BadDataError, BadOptionError, NativeError, PackPtqError, ShapeMismatchError, UnsupportedOpError,
} from '../errors';
import { native } from '../native';
import { ProgramDesc } from './lower';

export interface ProgramInfo {
  isa: string;
  threads: number;
  ops: number;
  arenaBytes: number;
  inputShapes: number[][];
  outputShapes: number[][];
}

/** Turns the `{code, message}` errors the addon throws into the matching error class. */
export function fromNative(err: unknown, context?: string): Error {
  if (err instanceof PackPtqError) return err;
  const e = err as { code?: string; message?: string };
  const msg = context ? `${context}: ${e.message}` : String(e.message ?? err);
  switch (e.code) {
    case 'UNSUPPORTED_OP': return new UnsupportedOpError(msg);
    case 'SHAPE_MISMATCH': return new ShapeMismatchError(msg);
    case 'BAD_OPTION': return new BadOptionError(msg);
    case 'BAD_DATA': return new BadDataError(msg);
    default: return new NativeError(msg);
  }
}

export class NativeProgram {
  private readonly handle: any;
  readonly info: ProgramInfo;

  /** Compiles synchronously: the calling thread builds the whole Program (see {@link create}). */
  constructor(desc: ProgramDesc, context?: string) {
    try {
      this.handle = new (native().Program)(desc);
    } catch (err) {
      throw fromNative(err, context);
    }
    this.info = this.handle.info();
  }

  /**
   * Compiles on a worker thread: only reading `desc` happens on the calling thread. Building a
   * whole network's Program (op set-up, weight packing, arena) takes tens to hundreds of
   * milliseconds, which a quantize run must not spend holding the event loop (issue 7).
   */
  static async create(desc: ProgramDesc, context?: string): Promise<NativeProgram> {
    let handle: any;
    try {
      handle = await native().Program.create(desc);
    } catch (err) {
      throw fromNative(err, context);
    }
    // The same object the constructor makes, around a handle that already exists.
    const p = Object.create(NativeProgram.prototype) as NativeProgram;
    return Object.assign(p, { handle, info: handle.info() });
  }

  runSync(inputs: Float32Array[]): Float32Array[] {
    try {
      return this.handle.runSync(inputs);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Runs on a worker thread; the event loop stays free. */
  async run(inputs: Float32Array[]): Promise<Float32Array[]> {
    try {
      return await this.handle.run(inputs);
    } catch (err) {
      throw fromNative(err);
    }
  }

  setThreads(threads: number): void {
    this.handle.setThreads(threads);
  }

  /** Runs as these Programs of parts of the batch while threads ≥ their count; [] turns it off. */
  setShards(shards: NativeProgram[]): void {
    try {
      this.handle.setShards(shards.map((p) => p.handle));
    } catch (err) {
      throw fromNative(err);
    }
  }

  setProfiling(on: boolean): void {
    this.handle.setProfiling(on);
  }

  profile(): { op: string; seconds: number }[] {
    return this.handle.profile();
  }
}

export function simdInfo(): { default: string; supported: Record<string, boolean> } {
  try {
    return native().simdInfo();
  } catch (err) {
    throw fromNative(err);
  }
}
