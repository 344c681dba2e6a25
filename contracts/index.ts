export * from './topics.js';
export * from './schemas.js';
export * from './validate.js';
export * from './sequence.js';
export * from './decode.js';
export * from './event-clock.js';
