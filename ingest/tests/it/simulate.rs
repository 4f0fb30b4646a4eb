//! The simulator's pacing, in real time.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, UNIX_EPOCH};

use ingest::simulate::{GeneratorConfig, Pacing, TickGenerator, events_for, write_lines};

/// 10 s at 20,000 events/s: exactly rate × duration events, spread over 10 s ± 5 %. The pacer works
/// from an absolute schedule and catches up after a stall, so a noisy machine cannot make the run
/// shorter; it only makes it longer if the CPU cannot keep up with 20k events/s at all.
#[test]
fn keeps_the_requested_rate_within_five_percent_over_ten_seconds() {
    let rate = 20_000.0;
    let mut generator = TickGenerator::new(&GeneratorConfig {
        symbols: 50,
        rate,
        seed: 1,
        start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    })
    .unwrap();
    let count = events_for(Duration::from_secs(10), rate);
    let started = Instant::now();
    let written = write_lines(
        &mut generator,
        std::io::sink(),
        Some(count),
        Pacing::Realtime(rate),
        &AtomicBool::new(false),
    )
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(written, 200_000);
    let achieved = written as f64 / elapsed;
    assert!(
        (achieved - rate).abs() / rate < 0.05,
        "{written} events in {elapsed:.3} s = {achieved:.0}/s, requested {rate}/s"
    );
}

#[test]
fn stop_flag_ends_an_endless_run() {
    let mut generator = TickGenerator::new(&GeneratorConfig {
        symbols: 3,
        rate: 1000.0,
        seed: 1,
        start: UNIX_EPOCH,
    })
    .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let written =
        write_lines(&mut generator, std::io::sink(), None, Pacing::Realtime(1000.0), &stop)
            .unwrap();
    stopper.join().unwrap();
    assert!((200..=400).contains(&written), "{written}");
}
