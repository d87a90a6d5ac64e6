//! WebSocket echo load: N connections, each sends a message and waits for its echo before
//! sending the next (closed loop, like wrk for HTTP). Prints one JSON line:
//! `{"messages_per_sec":..., "p50_us":..., "p99_us":..., "errors":...}`.
//!
//! Usage: wsbench URL [connections=64] [seconds=8] [message_bytes=16] [warmup_seconds=2]
//! Runs on one thread (pin it with taskset) so it never competes with the server's core.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn worker(url: String, size: usize, warmup_end: Instant, end: Instant) -> (u64, Vec<u32>, u64) {
    let (mut ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(pair) => pair,
        Err(_) => return (0, Vec::new(), 1),
    };
    let payload = vec![b'm'; size];
    let mut count = 0u64;
    let mut lat = Vec::with_capacity(1 << 16);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let msg = if size <= 125 {
            Message::text(String::from_utf8(payload.clone()).unwrap())
        } else {
            Message::binary(payload.clone())
        };
        if ws.send(msg).await.is_err() {
            return (count, lat, 1);
        }
        match ws.next().await {
            Some(Ok(m)) if m.len() == size => {}
            _ => return (count, lat, 1),
        }
        if now >= warmup_end {
            count += 1;
            lat.push(now.elapsed().as_micros() as u32);
        }
    }
    let _ = ws.close(None).await;
    (count, lat, 0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().expect("usage: wsbench URL [conns] [secs] [bytes] [warmup]");
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let size: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(16);
    let warmup: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let warmup_end = start + Duration::from_secs(warmup);
        let end = warmup_end + Duration::from_secs(secs);
        let handles: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(worker(url.clone(), size, warmup_end, end)))
            .collect();
        let mut total = 0u64;
        let mut errors = 0u64;
        let mut lat = Vec::new();
        for h in handles {
            let (c, l, e) = h.await.unwrap_or((0, Vec::new(), 1));
            total += c;
            errors += e;
            lat.extend(l);
        }
        lat.sort_unstable();
        let pct = |p: f64| lat.get(((lat.len() as f64) * p) as usize).copied().unwrap_or(0);
        println!(
            "{{\"messages_per_sec\": {:.1}, \"p50_us\": {}, \"p99_us\": {}, \"errors\": {}}}",
            total as f64 / secs as f64,
            pct(0.50),
            pct(0.99),
            errors
        );
    });
}
