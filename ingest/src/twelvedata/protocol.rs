//! TwelveData WebSocket messages (`/v1/quotes/price`).
//!
//! Client → server: `subscribe` (comma-separated symbols), `heartbeat`, `reset`.
//! Server → client: `subscribe-status` (`status`, `success[]`, `fails[]`, `messages[]`), `price`,
//! `heartbeat` acknowledgements, and error frames without `event` but with `"status":"error"`.
//! Every field the server may omit is optional here; numbers are accepted as numbers or numeric strings.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A message the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    /// Subscribe to these symbols (`AAPL`, `EUR/USD`, `RY:TSX`).
    Subscribe(&'a [String]),
    /// Keep-alive, recommended every 10 s.
    Heartbeat,
    /// Drop every subscription of this connection.
    Reset,
}

#[derive(Serialize)]
struct ActionFrame<'a> {
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<SymbolsParam>,
}

#[derive(Serialize)]
struct SymbolsParam {
    symbols: String,
}

impl ClientMessage<'_> {
    /// The JSON text frame for this message.
    pub fn to_json(&self) -> String {
        let frame = match self {
            Self::Subscribe(symbols) => ActionFrame {
                action: "subscribe",
                params: Some(SymbolsParam { symbols: symbols.join(",") }),
            },
            Self::Heartbeat => ActionFrame { action: "heartbeat", params: None },
            Self::Reset => ActionFrame { action: "reset", params: None },
        };
        serde_json::to_string(&frame).expect("action frames always serialize")
    }
}

/// One instrument in a `subscribe-status` `success` or `fails` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SymbolStatus {
    /// Ticker as the server echoes it.
    #[serde(default)]
    pub symbol: String,
    /// Exchange, when given.
    #[serde(default)]
    pub exchange: Option<String>,
    /// Why the server refused it, when given.
    #[serde(default)]
    pub message: Option<String>,
}

/// A `subscribe-status` event.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeStatus {
    /// `ok`, `warning` or `error`.
    pub status: String,
    /// Symbols now streaming.
    pub success: Vec<SymbolStatus>,
    /// Symbols the server refused (not entitled, unknown...).
    pub fails: Vec<SymbolStatus>,
    /// Free-text messages (e.g. `Cant parse message`).
    pub messages: Vec<String>,
}

/// A `price` event, borrowed from the frame it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEvent<'a> {
    /// Instrument ticker; the Kafka key.
    pub symbol: Cow<'a, str>,
    /// Event time, UNIX seconds.
    pub timestamp: i64,
    /// Last price.
    pub price: f64,
}

/// A parsed server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent<'a> {
    /// A price tick.
    Price(PriceEvent<'a>),
    /// The answer to a subscribe.
    SubscribeStatus(SubscribeStatus),
    /// Heartbeat acknowledgement.
    Heartbeat {
        /// Usually `ok`.
        status: Option<String>,
    },
    /// A frame with `"status":"error"` and no `event`.
    Error {
        /// The server's explanation, if any.
        messages: Vec<String>,
    },
    /// A well-formed frame with an event type this client does not know.
    Unknown {
        /// The `event` value.
        event: String,
    },
}

impl ServerEvent<'_> {
    /// Bounded label for metrics: `price`, `subscribe_status`, `heartbeat`, `error` or `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Price(_) => "price",
            Self::SubscribeStatus(_) => "subscribe_status",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Error { .. } => "error",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// A frame that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    /// Neither `event` nor `status` is present.
    #[error("frame has no \"event\" field")]
    NoEvent,
    /// A required field of a known event is missing or unusable.
    #[error("{event} event without a valid \"{field}\"")]
    MissingField {
        /// Event type.
        event: &'static str,
        /// Field name.
        field: &'static str,
    },
}

/// Every field any server frame may carry; unknown fields are ignored.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<Lenient>,
    #[serde(default)]
    price: Option<Lenient>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    success: Option<Vec<SymbolStatus>>,
    #[serde(default)]
    fails: Option<Vec<SymbolStatus>>,
    #[serde(default)]
    messages: Option<Vec<serde_json::Value>>,
}

/// A number sent as a JSON number or as a numeric string.
struct Lenient(f64);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Lenient, E> {
                Ok(Lenient(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lenient, E> {
                Ok(Lenient(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                v.trim()
                    .parse()
                    .map(Lenient)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

fn message_texts(messages: Option<Vec<serde_json::Value>>) -> Vec<String> {
    messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| match m {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect()
}

/// Parses one text frame from the server.
pub fn parse_server_message(text: &str) -> Result<ServerEvent<'_>, ProtocolError> {
    let frame: Frame<'_> = serde_json::from_str(text)?;
    let Some(event) = frame.event else {
        return match frame.status.as_deref() {
            Some("error") => Ok(ServerEvent::Error { messages: message_texts(frame.messages) }),
            _ => Err(ProtocolError::NoEvent),
        };
    };
    match event.as_ref() {
        "price" => {
            let missing = |field| ProtocolError::MissingField { event: "price", field };
            let symbol =
                frame.symbol.filter(|s| !s.trim().is_empty()).ok_or_else(|| missing("symbol"))?;
            let price = frame
                .price
                .map(|p| p.0)
                .filter(|p| p.is_finite())
                .ok_or_else(|| missing("price"))?;
            let timestamp = frame
                .timestamp
                .map(|t| t.0)
                .filter(|t| t.is_finite() && *t >= 0.0 && t.fract() == 0.0)
                .ok_or_else(|| missing("timestamp"))?;
            Ok(ServerEvent::Price(PriceEvent { symbol, timestamp: timestamp as i64, price }))
        }
        "subscribe-status" => Ok(ServerEvent::SubscribeStatus(SubscribeStatus {
            status: frame.status.unwrap_or_default(),
            success: frame.success.unwrap_or_default(),
            fails: frame.fails.unwrap_or_default(),
            messages: message_texts(frame.messages),
        })),
        "heartbeat" => Ok(ServerEvent::Heartbeat { status: frame.status }),
        other => Ok(ServerEvent::Unknown { event: other.to_owned() }),
    }
}

/// At most `max` bytes of `text` (cut on a character boundary), for logging untrusted frames.
pub fn truncate_for_log(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_match_the_documented_json() {
        let symbols = vec!["AAPL".to_owned(), "RY:TSX".to_owned(), "EUR/USD".to_owned()];
        assert_eq!(
            ClientMessage::Subscribe(&symbols).to_json(),
            r#"{"action":"subscribe","params":{"symbols":"AAPL,RY:TSX,EUR/USD"}}"#
        );
        assert_eq!(ClientMessage::Heartbeat.to_json(), r#"{"action":"heartbeat"}"#);
        assert_eq!(ClientMessage::Reset.to_json(), r#"{"action":"reset"}"#);
    }

    #[test]
    fn official_price_examples() {
        let equity = r#"{"event":"price","symbol":"AAPL","currency":"USD","exchange":"NASDAQ","type":"Common Stock","timestamp":1592249566,"price":342.0157,"day_volume":27631112}"#;
        let ServerEvent::Price(p) = parse_server_message(equity).unwrap() else {
            panic!("not a price")
        };
        assert_eq!((p.symbol.as_ref(), p.timestamp, p.price), ("AAPL", 1592249566, 342.0157));
        let fx = r#"{"event":"price","symbol":"XAU/USD","currency":"USD","currency_base":"Gold Spot","currency_quote":"US Dollar","type":"Physical Currency","timestamp":1647950462,"price":1925.18,"bid":1925.05,"ask":1925.32}"#;
        assert!(
            matches!(parse_server_message(fx).unwrap(), ServerEvent::Price(p) if p.symbol == "XAU/USD")
        );
        let strings =
            r#"{"event":"price","symbol":"BTC/USD","timestamp":"1600595462","price":"10964.8"}"#;
        assert!(
            matches!(parse_server_message(strings).unwrap(), ServerEvent::Price(p) if p.price == 10964.8 && p.timestamp == 1600595462)
        );
    }

    #[test]
    fn subscribe_status_variants() {
        let partial = r#"{"event": "subscribe-status", "status": "warning",
            "success": [{"symbol": "AMZN", "exchange": "NASDAQ"}, {"symbol": "XAG/USD"}],
            "fails": [{"symbol": "1211", "message": "You are not authorized to access XHKG data."}]}"#;
        let ServerEvent::SubscribeStatus(s) = parse_server_message(partial).unwrap() else {
            panic!()
        };
        assert_eq!(s.status, "warning");
        assert_eq!(s.success.len(), 2);
        assert_eq!(s.fails[0].symbol, "1211");
        assert!(s.fails[0].message.as_deref().unwrap().contains("not authorized"));

        let nulls = r#"{"event":"subscribe-status","status":"ok","success":[{"symbol":"EUR/USD","exchange":"PHYSICAL CURRENCY","type":"PHYSICAL_CURRENCY"}],"fails":null}"#;
        let ServerEvent::SubscribeStatus(s) = parse_server_message(nulls).unwrap() else {
            panic!()
        };
        assert!(s.fails.is_empty());

        let bad = r#"{"event": "subscribe-status", "status": "error", "messages": ["Cant parse message"]}"#;
        let ServerEvent::SubscribeStatus(s) = parse_server_message(bad).unwrap() else { panic!() };
        assert_eq!(s.messages, ["Cant parse message"]);
    }

    #[test]
    fn other_frames() {
        assert_eq!(
            parse_server_message(r#"{"event": "heartbeat", "status": "ok"}"#).unwrap(),
            ServerEvent::Heartbeat { status: Some("ok".into()) }
        );
        assert_eq!(
            parse_server_message(r#"{"status":"error","messages":[{"code":401}]}"#).unwrap(),
            ServerEvent::Error { messages: vec![r#"{"code":401}"#.into()] }
        );
        assert_eq!(parse_server_message(r#"{"event":"news","x":1}"#).unwrap().kind(), "unknown");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for garbage in [
            "",
            "not json",
            "[1,2,3]",
            "{}",
            "{\"event\":",
            r#"{"event":"price","price":1.0,"timestamp":1}"#,
            r#"{"event":"price","symbol":"AAPL","price":"abc","timestamp":1}"#,
            r#"{"event":"price","symbol":"AAPL","price":1.0}"#,
            r#"{"event":"price","symbol":"AAPL","price":1.0,"timestamp":1.5}"#,
            r#"{"event":"price","symbol":"","price":1.0,"timestamp":1}"#,
            r#"{"event":7}"#,
        ] {
            assert!(parse_server_message(garbage).is_err(), "{garbage:?} parsed");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_for_log("short", 10), "short");
        let long = "é".repeat(100);
        let cut = truncate_for_log(&long, 11);
        assert!(cut.starts_with("ééééé…"), "{cut}");
        assert!(cut.ends_with("(200 bytes)"), "{cut}");
    }
}
