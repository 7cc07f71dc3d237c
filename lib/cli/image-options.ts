/**
 * The image-folder options (--preset, --resize, --crop, --channels), shared by the subcommands that
 * read data. Sizes are written WIDTHxHEIGHT in both --resize and --crop, the order image tools
 * (ImageMagick, sharp) use, so one string means one size wherever it is typed.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ImageOptions, ImageSize } from '../data/images';

/** "N" or "WxH" (also "W×H"). */
function sizeArg(name: string, single: 'number' | 'square') {
  return (v: string): number | ImageSize => {
    const m = /^\s*(\d+)\s*(?:[x×X]\s*(\d+)\s*)?$/.exec(v);
    const a = m ? Number(m[1]) : NaN;
    const b = m?.[2] !== undefined ? Number(m[2]) : undefined;
    if (!m || a < 1 || (b !== undefined && b < 1)) {
      throw new InvalidArgumentError(`Expected a positive integer N or a size WxH for ${name} but received "${v}"`);
    }
    if (b !== undefined) return { width: a, height: b };
    return single === 'number' ? a : { width: a, height: a };
  };
}

export function addImageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--preset <name>', 'image-folder preprocessing preset: imagenet = --resize 256 --crop 224 --channels 3 and the ImageNet mean/std (explicit options override it)').choices(['imagenet']))
    .option('--resize <n|WxH>', 'image folders: resize so the shorter side is n pixels, or to exactly WxH', sizeArg('--resize', 'number'))
    .option('--crop <n|WxH>', 'image folders: centre crop to n×n or WxH pixels', sizeArg('--crop', 'square'))
    .option('--channels <c>', 'image folders: 3 = RGB (default), 1 = luma (grey)', (v: string): 1 | 3 => {
      if (v.trim() !== '1' && v.trim() !== '3') throw new InvalidArgumentError(`Expected 1 or 3 for --channels but received "${v}"`);
      return Number(v) as 1 | 3;
    });
}

/** The image options as the data loader takes them, from parsed CLI options. */
export function imageOptions(o: { preset?: string; resize?: number | ImageSize; crop?: number | ImageSize; channels?: 1 | 3 }): ImageOptions {
  return { preset: o.preset as ImageOptions['preset'], resize: o.resize, crop: o.crop, channels: o.channels };
}
