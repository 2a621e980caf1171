//! Log and trace setup: `RUST_LOG` filters (default `info`), text or JSON lines on stderr
//! with the fields of the spans around each event (session, request and RPC ids), and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! spans exported over OTLP/HTTP (protobuf) in batches.
//!
//! Spans made for every message (target [`TRACE_TARGET`]) go to the exporter only: logs
//! never show them, and with no exporter they are never built, so tracing costs the hot
//! path nothing unless it is on.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of per-message spans: exported, never logged.
pub const TRACE_TARGET: &str = "chat_trace";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported (trace context is worth propagating).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flushes exported spans when dropped (at the end of `main`).
#[must_use = "dropping it at once stops span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("trace export did not flush: {e}");
            }
        }
    }
}

/// Logs only, no span export (tools and tests); a second call is a no-op.
pub fn init_logging(format: LogFormat) {
    let _ = install(format, None);
}

/// Logs, plus span export when the OTLP endpoint is set; `service` names this process in
/// traces and in `chat_build_info`. A second call (tests) is a no-op.
pub fn init_telemetry(service: &'static str, format: LogFormat) -> Telemetry {
    install_crypto_provider();
    crate::metrics::record_build_info(service);
    let provider = otlp_endpoint_set()
        .then(|| tracer_provider(service))
        .flatten();
    Telemetry {
        provider: install(format, provider),
    }
}

/// Makes `ring` the process's TLS crypto provider. Two are compiled in (`gcp_auth`'s HTTP
/// client brings aws-lc-rs), and clients that take the process default (redis's `rediss://`)
/// would otherwise refuse to choose. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn otlp_endpoint_set() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var(var).is_ok_and(|v| !v.is_empty()))
}

fn tracer_provider(service: &'static str) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OTLP span export is off: {e}");
            return None;
        }
    };
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build(),
    )
}

fn install(format: LogFormat, provider: Option<SdkTracerProvider>) -> Option<SdkTracerProvider> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{TRACE_TARGET}=off")
                .parse()
                .expect("valid directive"),
        );
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("chat"))
            .with_filter(Targets::new().with_default(LevelFilter::INFO))
    });
    let logs = tracing_subscriber::registry().with(fmt.with_filter(filter));
    // Not `.with(Option<layer>)`: an absent layer answers "always" for every callsite,
    // which would build every disabled `debug!` on the hot path (+5.7% instructions per
    // message, measured).
    let installed = match otel {
        Some(otel) => logs.with(otel).try_init(),
        None => logs.try_init(),
    }
    .is_ok();
    if installed && provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        EXPORTING.store(true, Ordering::Relaxed);
    }
    provider.filter(|_| installed)
}
