//! Where price events go: Kafka, a JSON-lines writer, or both (recording).

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use tokio::time::Instant;

use crate::producer::TickProducer;

/// Error type a [`PriceSink`] may return; it stops whoever feeds the sink.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives price events.
pub trait PriceSink {
    /// Called once per `price` event with its JSON text exactly as received and the instant it was
    /// read. An error is fatal for the caller.
    fn on_price(
        &mut self,
        symbol: &str,
        raw: &str,
        received: Instant,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Produces each event to Kafka: key = symbol, value = the raw JSON.
#[derive(Clone)]
pub struct KafkaSink(pub Arc<TickProducer>);

impl PriceSink for KafkaSink {
    async fn on_price(&mut self, symbol: &str, raw: &str, _: Instant) -> Result<(), SinkError> {
        self.0.send(symbol, raw.as_bytes()).await?;
        Ok(())
    }
}

/// Writes each event as one JSON line (a capture file, or stdout).
pub struct LineSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> LineSink<W> {
    /// Wraps a writer; pass a buffered one.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one event as a line. A frame spread over several lines is re-encoded compactly so the
    /// output stays one event per line.
    pub fn write_event(&mut self, raw: &str) -> std::io::Result<()> {
        if raw.contains(['\n', '\r']) {
            let value: serde_json::Value = serde_json::from_str(raw)?;
            serde_json::to_writer(&mut self.out, &value)?;
        } else {
            self.out.write_all(raw.as_bytes())?;
        }
        self.out.write_all(b"\n")
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + Send> PriceSink for LineSink<W> {
    async fn on_price(&mut self, _: &str, raw: &str, _: Instant) -> Result<(), SinkError> {
        self.write_event(raw)?;
        Ok(())
    }
}

/// Sends each event to `inner` and also records it as a JSON line (`ingest run --record FILE`).
pub struct Recording<S, W: Write + Send> {
    /// The main destination.
    pub inner: S,
    /// The capture.
    pub capture: LineSink<W>,
}

impl<S: PriceSink + Send, W: Write + Send> PriceSink for Recording<S, W> {
    async fn on_price(
        &mut self,
        symbol: &str,
        raw: &str,
        received: Instant,
    ) -> Result<(), SinkError> {
        self.inner.on_price(symbol, raw, received).await?;
        self.capture.write_event(raw)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn line_sink_writes_one_event_per_line() {
        let mut sink = LineSink::new(Vec::new());
        sink.on_price("A", r#"{"event":"price","symbol":"A"}"#, Instant::now()).await.unwrap();
        sink.on_price("B", "{\"event\":\"price\",\n \"symbol\":\"B\"}", Instant::now())
            .await
            .unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert_eq!(
            text,
            "{\"event\":\"price\",\"symbol\":\"A\"}\n{\"event\":\"price\",\"symbol\":\"B\"}\n"
        );
    }
}
