export { SparkplugHost, REBIRTH_METRIC, writeValue, type SparkplugHostOptions, type SparkplugHostCounters } from './host.js';
export { sparkplugConfigSchema, type SparkplugConfig } from './config.js';
export { decodeSparkplug, encodeSparkplug, type Metric, type Payload, type OutgoingMetric } from './codec.js';
export { parseSparkplugTopic, sparkplugTopics, SPARKPLUG_NAMESPACE } from './topic.js';
export { sparkplugModule, SPARKPLUG_EDGE_ROLE } from './module.js';
