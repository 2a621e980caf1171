//! W3C trace context across process boundaries: the `traceparent` of the current span to
//! send along (an HTTP or gRPC header, or a field of a batched send), and a span's parent
//! taken from one received. Both do nothing unless spans are exported.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::logging::exporting;

/// The header (and field) name.
pub const TRACEPARENT: &str = "traceparent";

struct One(Option<String>);

impl Injector for One {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

struct From<'a>(&'a str);

impl Extractor for From<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT && !self.0.is_empty()).then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The current span's `traceparent`; empty when spans are not exported.
pub fn current_traceparent() -> String {
    if !exporting() {
        return String::new();
    }
    let context = tracing::Span::current().context();
    let mut one = One(None);
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut one));
    one.0.unwrap_or_default()
}

/// Makes the span a child of the remote span named by `traceparent` (if any).
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    if !exporting() || traceparent.is_empty() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&From(traceparent)));
    let _ = span.set_parent(parent);
}

/// `traceparent` of a header map, for [`set_remote_parent`].
pub fn traceparent_of(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
