/**
 * Spans through @opentelemetry/api, tagged as Kata tags its daemon spans. Without a registered
 * SDK the API hands out no-op spans, so this costs nothing then.
 */
import { SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';

const tracer = trace.getTracer('virtiofs-daemon');

/** Run `fn` inside span `name` with Kata's tags (source, package, subsystem) plus `attributes`. */
export async function traced<T>(
  name: string,
  subsystem: string,
  attributes: Attributes,
  fn: () => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(
    name,
    { attributes: { source: 'runtime', package: 'virtcontainers', subsystem, ...attributes } },
    async (span) => {
      try {
        return await fn();
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}
