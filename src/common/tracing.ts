/**
 * Spans through @opentelemetry/api, tagged as Kata tags its daemon spans. Without a registered
 * SDK the API hands out no-op spans, so this costs nothing then.
 */
import { context, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';

const tracer = trace.getTracer('virtiofs-daemon');

/**
 * Run `fn` inside span `name` with Kata's tags (source, package, subsystem) plus `attributes`.
 * What `startActiveSpan` does, in two steps: the API's no-op span (no SDK registered: an
 * invalid span context) runs `fn` as it is, without the context the API would make and switch
 * to for it on every start and stop. A span a sampler dropped still becomes the active one, so
 * that what happens inside inherits the decision. Not an async function: in the no-op case the
 * caller gets `fn`'s own promise, with no wrapper promise and no extra turns of the microtask
 * queue on every start and stop. `fn` must report its failures by rejecting; `attributes` may be
 * a function, read inside, so that what it throws rejects too.
 */
export function traced<T>(
  name: string,
  subsystem: string,
  attributes: Attributes | (() => Attributes),
  fn: () => Promise<T>,
): Promise<T> {
  let span;
  try {
    const extra = typeof attributes === 'function' ? attributes() : attributes;
    span = tracer.startSpan(name, {
      attributes: { source: 'runtime', package: 'virtcontainers', subsystem, ...extra },
    });
  } catch (err) {
    // A failing SDK, or attributes that cannot be read, reject the call: never a synchronous throw.
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  if (!span.isRecording() && !trace.isSpanContextValid(span.spanContext())) {
    span.end();
    return fn();
  }
  return context.with(trace.setSpan(context.active(), span), async () => {
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
