//! One HTTP/2 channel per chat-service instance, made on first use and kept: tonic
//! multiplexes every call and send stream to that instance over it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chat_api::ChatError;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::Credentials;
use crate::limits::RpcLimits;
use crate::pb::chat_service_client::ChatServiceClient as ChatClient;

pub(crate) type Client = ChatClient<InterceptedService<Channel, Credentials>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) struct Channels {
    clients: Mutex<HashMap<String, Client>>,
    credentials: Credentials,
    limits: RpcLimits,
}

impl Channels {
    pub(crate) fn new(credentials: Credentials, limits: RpcLimits) -> Self {
        Channels {
            clients: Mutex::new(HashMap::new()),
            credentials,
            limits,
        }
    }

    /// The client of the instance at `url`.
    pub(crate) fn get(&self, url: &str) -> Result<Client, ChatError> {
        let mut clients = self.clients.lock().expect("channels lock");
        if let Some(client) = clients.get(url) {
            return Ok(client.clone());
        }
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ChatError::internal(format!("bad chat service URL {url}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE)
            .keep_alive_timeout(KEEP_ALIVE)
            .keep_alive_while_idle(true)
            .connect_lazy();
        let client = ChatClient::with_interceptor(channel, self.credentials.clone())
            .max_decoding_message_size(self.limits.max_message_bytes)
            .max_encoding_message_size(self.limits.max_message_bytes);
        clients.insert(url.to_owned(), client.clone());
        Ok(client)
    }
}
