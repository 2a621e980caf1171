//! The commands for people: token, create-chat, send, tail.

use anyhow::bail;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{CreateChatArgs, SendArgs, TailArgs, TokenArgs};
use crate::client::{connect, create_chat as rest_create_chat, http, next_json, Keys};

pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let keys =
        chat_auth::JwtKeys::new(args.jwt_secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}",
        keys.mint(&args.user, args.device.as_deref(), args.ttl)
            .map_err(|e| anyhow::anyhow!("{e}"))?
    );
    Ok(())
}

pub async fn create_chat(args: &CreateChatArgs) -> anyhow::Result<()> {
    let token = Keys::new(&args.target.jwt_secret)?.token(&args.target.user);
    let body = match (&args.with, args.members.is_empty()) {
        (Some(other), _) => json!({"kind": "direct", "members": [other]}),
        (None, false) => json!({"kind": "group", "title": args.title, "members": args.members}),
        (None, true) => bail!("give --with USER (direct) or --members A,B (group)"),
    };
    println!(
        "{}",
        rest_create_chat(&http(), &args.target.url, &token, body).await?
    );
    Ok(())
}

pub async fn send(args: &SendArgs) -> anyhow::Result<()> {
    let token = Keys::new(&args.target.jwt_secret)?.token(&args.target.user);
    let mut ws = connect(&args.target.url, &token, "chatctl", None).await?;
    let frame = json!({"type": "send", "id": "1", "chat_id": args.chat_id,
                       "client_msg_id": uuid::Uuid::new_v4().to_string(), "body": args.body});
    ws.send(Message::Text(frame.to_string().into())).await?;
    while let Some(reply) = next_json(&mut ws).await? {
        if reply["re"] == "1" {
            println!("{reply}");
            return if reply["type"] == "sent" {
                Ok(())
            } else {
                bail!("send failed")
            };
        }
    }
    bail!("connection closed before the reply")
}

pub async fn tail(args: &TailArgs) -> anyhow::Result<()> {
    let token = Keys::new(&args.target.jwt_secret)?.token(&args.target.user);
    let mut ws = connect(&args.target.url, &token, "chatctl-tail", None).await?;
    ws.send(Message::Text(
        json!({"type": "sync", "id": "sync", "cursors": {}})
            .to_string()
            .into(),
    ))
    .await?;
    while let Some(frame) = next_json(&mut ws).await? {
        let wanted = args
            .chat_id
            .as_ref()
            .is_none_or(|c| frame["chat_id"] == c.as_str());
        if frame["type"] == "msg" && wanted {
            println!(
                "{}\t{}\t{}\t{}",
                frame["chat_id"].as_str().unwrap_or(""),
                frame["seq"],
                frame["sender_id"].as_str().unwrap_or(""),
                frame["body"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
