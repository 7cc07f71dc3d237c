/**
 * A loaded model: the decoded graph plus native Programs compiled on demand for each batch size
 * (shapes are concrete inside a Program, so each batch size is its own Program; they are cached).
 */
import * as path from 'path';
import { BadOptionError, ShapeMismatchError, UnsupportedModelError, expected } from '../errors';
import { Graph, Tensor, ValueInfo } from '../graph/ir';
import { importGraph } from '../graph/import';
import { canonicalize } from '../graph/passes';
import { checkSupported, specialize } from '../graph/specialize';
import { decodeModel, loadModelFile } from '../onnx/decode';
import { OnnxModel } from '../onnx/schema';
import { batchParts, samplesIndependent } from './batch-shards';
import { ProgramDesc, lower } from './lower';
import { NativeProgram } from './program';

/** How a model's native Program is compiled. */
export interface CompileOptions {
  /** Threads inside the kernels (default 1). */
  threads?: number;
  /** Force an instruction set: 'scalar' | 'avx2' | 'avx512' (default: best available, or PACKPTQ_SIMD). */
  isa?: string;
}

/** Options of Model.load / loadModel. */
export interface LoadOptions {
  /** Run the graph as decoded, without the canonicalising passes (for comparisons). */
  raw?: boolean;
}

/**
 * A loaded ONNX model, ready to run, evaluate and quantize. Get one with {@link loadModel}
 * (asynchronous) or `Model.load` (synchronous).
 */
export class Model {
  /** The graph as decoded from the file. */
  readonly original: Graph;
  /** The canonical graph (lib/graph/passes) that runs and is quantized. */
  readonly graph: Graph;
  /** The model's data input (initializers listed as inputs excluded). */
  readonly input: ValueInfo;
  /** The first graph output: the logits evaluate and quantize read. */
  readonly output: ValueInfo;
  private readonly programs = new Map<string, NativeProgram>();
  /** Batch shards per `batch/isa/threads` (see shardKey). */
  private readonly shardSets = new Map<string, NativeProgram[]>();
  /** Per batch size: whether the specialised graph keeps its samples apart. */
  private readonly independent = new Map<number, boolean>();
  private readonly building = new Map<string, Promise<NativeProgram>>();

  private constructor(readonly file: string, readonly onnx: OnnxModel | undefined, opts: LoadOptions = {}, graph?: Graph) {
    this.original = graph ?? importGraph(onnx!, file);
    checkSupported(this.original);
    this.graph = graph || opts.raw ? this.original : canonicalize(this.original);
    const inputs = this.graph.inputs.filter((v) => !this.graph.initializers.has(v.name));
    if (inputs.length !== 1) throw new UnsupportedModelError(`${file}: packptq runs models with exactly one data input, this one has ${inputs.length} (${inputs.map((v) => v.name).join(', ')})`);
    if (this.graph.outputs.length < 1) throw new UnsupportedModelError(`${file}: the model has no outputs`);
    this.input = inputs[0];
    this.output = this.graph.outputs[0];
    if (!this.input.shape || this.input.shape.length < 1) throw new UnsupportedModelError(`${file}: input "${this.input.name}" has no declared shape`);
  }

  /**
   * Reads and decodes a model file synchronously (see loadModel for the asynchronous form).
   * @throws IoError, OnnxDecodeError, UnsupportedOpError, UnsupportedModelError, naming the file.
   */
  static load(file: string, opts: LoadOptions = {}): Model {
    return new Model(file, loadModelFile(file), opts);
  }

  /** A model from ONNX bytes already in memory; `name` appears in error messages and as `file`. */
  static fromBytes(bytes: Uint8Array, name = '<bytes>', opts: LoadOptions = {}): Model {
    return new Model(name, decodeModel(bytes, name), opts);
  }

  /** A model over a graph already in canonical form (a simulated quantized graph, say). */
  static fromGraph(graph: Graph, name: string): Model {
    return new Model(name, undefined, {}, graph);
  }

  /**
   * A Program for `batch` whose outputs are the given values of the graph (calibration reads the
   * activations entering each quantized layer this way), compiled anew on every call.
   */
  captureProgram(batch: number, values: string[], opts: CompileOptions = {}): NativeProgram {
    return new NativeProgram(this.captureDesc(batch, values, opts), this.file);
  }

  /** {@link captureProgram}, built on a worker thread (the event loop stays free meanwhile). */
  captureProgramAsync(batch: number, values: string[], opts: CompileOptions = {}): Promise<NativeProgram> {
    return NativeProgram.create(this.captureDesc(batch, values, opts), this.file);
  }

  private captureDesc(batch: number, values: string[], opts: CompileOptions): ProgramDesc {
    const g: Graph = { ...this.graph, outputs: values.map((name) => ({ name, dtype: 'float32' as const })) };
    const s = specialize(g, { inputShapes: { [this.input.name]: this.inputShapeFor(batch) } });
    return { ...lower(s), isa: opts.isa, threads: opts.threads ?? 1 };
  }

  /** The file's base name. */
  get name(): string {
    return path.basename(this.file);
  }

  /** The shape of one sample (the input shape without its leading batch dim). */
  get sampleShape(): (number | string)[] {
    return this.input.shape!.slice(1);
  }

  /** The concrete input shape for a batch, checking that the non-batch dims are fixed. */
  inputShapeFor(batch: number): number[] {
    if (!Number.isInteger(batch) || batch < 1) throw expected('a positive integer', 'batch', batch);
    const rest = this.sampleShape;
    if (rest.some((d) => typeof d !== 'number'))
      throw new ShapeMismatchError(`${this.file}: input "${this.input.name}" has symbolic non-batch dims [${this.input.shape!.join(',')}]`);
    const b0 = this.input.shape![0];
    if (typeof b0 === 'number' && b0 !== batch)
      throw new ShapeMismatchError(`${this.file}: input "${this.input.name}" has a fixed batch of ${b0}; cannot run batch ${batch}`);
    return [batch, ...(rest as number[])];
  }

  /** The Program for a batch size, compiled on first use. */
  program(batch: number, opts: CompileOptions = {}): NativeProgram {
    const threads = checkThreads(opts);
    const key = `${batch}/${opts.isa ?? ''}`;
    let p = this.programs.get(key);
    if (!p) {
      p = new NativeProgram(this.programDesc(batch, opts), this.file);
      this.programs.set(key, p);
    }
    p.setThreads(threads);
    const shardKey = this.shardKey(batch, threads, opts);
    if (shardKey && !this.shardSets.has(shardKey))
      this.shardSets.set(shardKey, batchParts(batch, threads).map((b) => new NativeProgram(this.shardDesc(b, opts), this.file)));
    p.setShards((shardKey && this.shardSets.get(shardKey)) || []);
    return p;
  }

  /**
   * With several threads and a batch of at least two samples per thread, a Program runs as one
   * single-threaded shard per thread, each on its part of the batch (see Program::set_shards), when
   * the graph keeps samples apart. The key of that shard set, or null when the Program runs whole.
   * PACKPTQ_SHARDS=0 turns sharding off (for comparisons).
   */
  private shardKey(batch: number, threads: number, opts: CompileOptions): string | null {
    if (threads < 2 || batch < 2 * threads || process.env.PACKPTQ_SHARDS === '0') return null;
    let independent = this.independent.get(batch);
    if (independent === undefined) this.independent.set(batch, (independent = samplesIndependent(this.specialized(batch))));
    return independent ? `${batch}/${opts.isa ?? ''}/${threads}` : null;
  }

  private shardDesc(batch: number, opts: CompileOptions): ProgramDesc {
    return { ...this.programDesc(batch, opts), threads: 1 };
  }

  /** {@link program}, compiled (on first use) on a worker thread: the event loop stays free meanwhile. */
  async programAsync(batch: number, opts: CompileOptions = {}): Promise<NativeProgram> {
    const threads = checkThreads(opts);
    const key = `${batch}/${opts.isa ?? ''}`;
    let p = this.programs.get(key);
    if (!p) {
      // Concurrent first calls share one build.
      let building = this.building.get(key);
      if (!building) {
        building = NativeProgram.create(this.programDesc(batch, opts), this.file);
        this.building.set(key, building);
      }
      try {
        p = await building;
      } finally {
        this.building.delete(key);
      }
      if (!this.programs.has(key)) this.programs.set(key, p);
      p = this.programs.get(key)!;
    }
    p.setThreads(threads);
    const shardKey = this.shardKey(batch, threads, opts);
    if (shardKey && !this.shardSets.has(shardKey))
      this.shardSets.set(shardKey, await Promise.all(batchParts(batch, threads).map((b) => NativeProgram.create(this.shardDesc(b, opts), this.file))));
    p.setShards((shardKey && this.shardSets.get(shardKey)) || []);
    return p;
  }

  private specialized(batch: number) {
    return specialize(this.graph, { inputShapes: { [this.input.name]: this.inputShapeFor(batch) } });
  }

  private programDesc(batch: number, opts: CompileOptions): ProgramDesc {
    return { ...lower(this.specialized(batch)), isa: opts.isa, threads: opts.threads ?? 1 };
  }

  /** Runs one batch synchronously; returns the first output. */
  runSync(input: Float32Array, batch: number, opts: CompileOptions = {}): Float32Array {
    this.checkInput(input, batch);
    return this.program(batch, opts).runSync([input])[0];
  }

  /** Runs one batch on a worker thread; returns the first output. */
  async run(input: Float32Array, batch: number, opts: CompileOptions = {}): Promise<Float32Array> {
    this.checkInput(input, batch);
    return (await this.program(batch, opts).run([input]))[0];
  }

  private checkInput(input: Float32Array, batch: number): void {
    if (!(input instanceof Float32Array)) throw new BadOptionError(`Expected a Float32Array for input but received ${typeof input}`);
    const shape = this.inputShapeFor(batch);
    const n = shape.reduce((a, b) => a * b, 1);
    if (input.length !== n)
      throw new ShapeMismatchError(`${this.file}: input "${this.input.name}" [${shape.join(',')}] needs ${n} values, received ${input.length}`);
  }
}

function checkThreads(opts: CompileOptions): number {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw expected('a positive integer', 'threads', threads);
  return threads;
}

export type { Tensor };
