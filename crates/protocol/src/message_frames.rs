//! The two frames every message makes, `msg` to its readers and `sent` to its sender,
//! written by hand. Through serde, `ServerFrame`'s inner tag wraps each in a tagging
//! serializer, and serde_json escapes every key and value a byte at a time: 10% of
//! `chatd`'s instructions (BENCHMARKS.md). Here keys are literals and a value with
//! nothing to escape (ids, most bodies) is copied whole; the output is exactly serde's,
//! as the tests check.

use crate::objects::Message;

/// `{"type":"msg", ...the message's fields}`.
pub(crate) fn msg(m: &Message) -> String {
    let mut out = String::with_capacity(112 + m.body.len() + m.msg_id.len() * 2);
    out.push_str(r#"{"type":"msg","chat_id":"#);
    push_string(&mut out, &m.chat_id);
    out.push_str(r#","seq":"#);
    push_number(&mut out, m.seq);
    out.push_str(r#","msg_id":"#);
    push_string(&mut out, &m.msg_id);
    out.push_str(r#","sender_id":"#);
    push_string(&mut out, &m.sender_id);
    out.push_str(r#","client_msg_id":"#);
    push_string(&mut out, &m.client_msg_id);
    out.push_str(r#","body":"#);
    push_string(&mut out, &m.body);
    out.push_str(r#","ts":"#);
    push_number(&mut out, m.ts);
    out.push('}');
    out
}

/// `{"type":"sent", ...}`.
pub(crate) fn sent(
    re: &str,
    chat_id: &str,
    client_msg_id: &str,
    msg_id: &str,
    seq: u64,
    ts: i64,
) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(r#"{"type":"sent","re":"#);
    push_string(&mut out, re);
    out.push_str(r#","chat_id":"#);
    push_string(&mut out, chat_id);
    out.push_str(r#","client_msg_id":"#);
    push_string(&mut out, client_msg_id);
    out.push_str(r#","msg_id":"#);
    push_string(&mut out, msg_id);
    out.push_str(r#","seq":"#);
    push_number(&mut out, seq);
    out.push_str(r#","ts":"#);
    push_number(&mut out, ts);
    out.push('}');
    out
}

/// `value` as a JSON string. serde_json escapes `"`, `\` and the bytes below 0x20 and
/// nothing else; a value with none of them is copied as it is.
fn push_string(out: &mut String, value: &str) {
    if needs_escape(value.as_bytes()) {
        out.push_str(&serde_json::to_string(value).expect("a str always serializes"));
    } else {
        out.push('"');
        out.push_str(value);
        out.push('"');
    }
}

/// Whether any byte is one serde_json escapes. Looked for 16 bytes at a time, without an
/// exit inside a chunk, so the compiler checks each chunk in a few vector instructions.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &b| any | escaped(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| escaped(b))
}

fn push_number(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

#[cfg(test)]
mod tests {
    use crate::frames::ServerFrame;
    use crate::objects::Message;

    /// Every ASCII byte at every place of a 49-byte string (three 16-byte chunks and a
    /// byte left over), short strings, a byte to escape right after whole chunks, and
    /// non-ASCII text long enough to be checked chunk by chunk.
    fn awkward_strings() -> Vec<String> {
        let mut strings = Vec::new();
        for b in 0u8..0x80 {
            for at in 0..49 {
                let mut bytes = vec![b'x'; 49];
                bytes[at] = b;
                strings.push(String::from_utf8(bytes).unwrap());
            }
            strings.push((b as char).to_string());
        }
        for tail in ["\"", "\\", "\n", "\u{1f}", "\u{7f}", "é"] {
            strings.push(format!("{}{tail}", "x".repeat(16)));
            strings.push(format!("{}{tail}", "x".repeat(32)));
        }
        let non_ascii = "é日本😀".repeat(8);
        strings.extend([String::new(), format!("{non_ascii}\""), non_ascii]);
        strings
    }

    #[test]
    fn msg_frames_are_written_exactly_as_serde_writes_them() {
        for text in awkward_strings() {
            let frame = ServerFrame::Msg(Message {
                chat_id: text.as_str().into(),
                seq: u64::MAX,
                msg_id: text.clone(),
                sender_id: text.as_str().into(),
                client_msg_id: text.clone(),
                body: text.clone(),
                ts: i64::MIN,
            });
            assert_eq!(
                frame.to_json(),
                serde_json::to_string(&frame).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn sent_frames_are_written_exactly_as_serde_writes_them() {
        for text in awkward_strings() {
            let frame = ServerFrame::Sent {
                re: text.clone(),
                chat_id: text.as_str().into(),
                client_msg_id: text.clone(),
                msg_id: text.clone(),
                seq: 0,
                ts: -1,
            };
            assert_eq!(
                frame.to_json(),
                serde_json::to_string(&frame).unwrap(),
                "{text:?}"
            );
        }
    }
}
