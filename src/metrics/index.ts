export { CapibaraMetrics, type CapibaraMetricsOptions, type ObservedPipeline, type TraceRecord } from './capibara-metrics';
export { METRICS, type MetricInfo, type MetricName } from './names';
