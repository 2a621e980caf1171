//! Traces over OTLP: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the gateway and the chat
//! service export their spans to a receiver the test starts, and a request's spans in the
//! two processes share one trace, the chat service's a child of the gateway's.

use std::time::{Duration, Instant};

use chat_testkit::{Cluster, OtlpReceiver, ReceivedSpan};

/// Waits until the receiver holds a `child` span (of `child_service`) whose parent is a
/// `parent` span of `parent_service` in the same trace; returns the pair.
async fn linked(
    receiver: &OtlpReceiver,
    (parent_service, parent): (&str, &str),
    (child_service, child): (&str, &str),
) -> (ReceivedSpan, ReceivedSpan) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans = receiver.spans();
        let found = spans
            .iter()
            .filter(|s| s.service == child_service && s.name == child)
            .find_map(|c| {
                spans
                    .iter()
                    .find(|p| {
                        p.service == parent_service
                            && p.name == parent
                            && p.trace_id == c.trace_id
                            && p.span_id == c.parent_span_id
                    })
                    .map(|p| (p.clone(), c.clone()))
            });
        if let Some(pair) = found {
            return pair;
        }
        let names: Vec<_> = spans.iter().map(|s| (&s.service, &s.name)).collect();
        assert!(
            Instant::now() < deadline,
            "no {child_service}/{child} span under {parent_service}/{parent}; received {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_one_trace_across_gateway_and_chat_service() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let cluster = Cluster::start_with_env(
        1,
        1,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let chat_id = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let sent = alice.send_message(&chat_id, "traced-1", "hello").await;
    assert_eq!(sent["type"], "sent", "{sent}");

    // The WebSocket send: the gateway's request span, the chat service's send under it.
    let (request, send) = linked(
        &receiver,
        ("chat-gateway", "ws.request"),
        ("chat-service", "chat.send"),
    )
    .await;
    assert_eq!(request.trace_id, send.trace_id);
    assert_eq!(request.trace_id.len(), 16, "a W3C trace id");
    // The REST call: the gateway's HTTP span, the chat service's RPC span under it.
    linked(
        &receiver,
        ("chat-gateway", "http.request"),
        ("chat-service", "rpc.server"),
    )
    .await;
}
