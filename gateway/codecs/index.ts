export * from './types.js';
export { LineFramer, type FrameDropReason } from './framer.js';
export { ndjsonCodec } from './ndjson.js';
export { textCodec, xorChecksum, sentence, parseSentence } from './text.js';
import { ndjsonCodec } from './ndjson.js';
import { textCodec } from './text.js';
import type { LineCodec } from './types.js';

export const lineCodecs: Record<'ndjson' | 'text', LineCodec> = { ndjson: ndjsonCodec, text: textCodec };
