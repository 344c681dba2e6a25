export { SparkplugHost, REBIRTH_METRIC, writeValue, type SparkplugHostOptions, type SparkplugHostCounters } from './host.js';
export { sparkplugConfigSchema, type SparkplugConfig } from './config.js';
export { decodeSparkplug, encodeSparkplug, type Metric, type Payload, type OutgoingMetric } from '../contracts/sparkplug/codec.js';
export { parseSparkplugTopic, sparkplugTopics, SPARKPLUG_NAMESPACE } from '../contracts/sparkplug/topics.js';
export { sparkplugModule, SPARKPLUG_EDGE_ROLE } from './module.js';
