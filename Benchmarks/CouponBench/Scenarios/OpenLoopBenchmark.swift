// open-loop: claims offered at a fixed rate (50,000/s by default) whatever the store does.
//
// A closed loop hides slowness: when the store stalls, its callers stop sending, and the stall is
// counted once instead of once per request that should have been sent meanwhile ("coordinated
// omission"). Here a pacer starts claim `i` at `start + i / rate`, each in its own task, never
// waiting for answers, and a claim's latency runs from that intended start, not from when the
// pacer got round to it, nor from when the task first ran. A pool that falls behind therefore
// shows in the latencies, as it would for a real client.
//
// The pacer is a dedicated thread sleeping on absolute deadlines (`clock_nanosleep`), not a task:
// a task would wait behind thousands of claim tasks in the cooperative pool's queue and offer the
// load in bursts, whereas a thread keeps the schedule however busy the pool is.

import CouponStore
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

struct OpenLoopBenchmark: Scenario {
  let name = "open-loop"
  let summary = "claims offered at a fixed rate, latency without coordinated omission"

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let rate = Double(bench.options.openLoopRate)
    let total = max(1, Int(rate * bench.options.openLoopSeconds))
    let (store, directory) = try await bench.openFreshStore(name)
    var failures: [String] = []
    var achieved: [Double] = []
    var pacerLag: [Double] = []
    var claimsPerSync: [Double] = []
    var claimsPerWrite: [Double] = []
    let runs = try await bench.repeated("\(name) \(Int(rate))/s × \(total)") { run in
      let campaign = "open-\(run)"
      _ = try await store.createCampaign(ampleCampaign(campaign, stock: total))
      let records = OpRecords(count: total)
      let before = try await store.statistics()
      let lagMax = try await Pacer.run(total: total, rate: rate, records: records) { index in
        Outcome(try await store.claim(campaign: campaign, user: "o\(run)-\(index)"))
      }
      let start = records.buffer.map(\.start).min() ?? 0
      let lastEnd = records.buffer.map(\.end).max() ?? start
      achieved.append(Double(total) / Clock.seconds(from: start, to: lastEnd))
      pacerLag.append(Double(lagMax))
      let after = try await store.statistics()
      claimsPerSync.append(Double(total) / Double(max(1, after.logSyncs - before.logSyncs)))
      claimsPerWrite.append(Double(total) / Double(max(1, after.logWrites - before.logWrites)))
      let claimed = records.count(.claimed)
      let issued = try await store.campaign(campaign)?.issued ?? -1
      if claimed != total || issued != total {
        failures.append("run \(run): \(claimed) claimed, \(issued) issued of \(total)")
      }
      return records
    }
    var row = ResultRow(label: "\(formatRate(rate))/s offered", parameter: rate, unit: "claims/s")
    row.throughput = Spread(achieved)
    row.setLatency(of: "claim, from its scheduled start", runs: runs.map { $0.sortedLatencies() })
    row.metrics.append(
      Metric(
        name: "achieved", value: Spread(achieved), unit: .perSecond, relativeTo: "the offered rate",
        ratio: ratio(Spread(achieved).median, rate)))
    row.metrics.append(Metric(name: "pacer's largest lag", value: Spread(pacerLag), unit: .nanos))
    row.metrics.append(
      Metric(name: "claims per fdatasync", value: Spread(claimsPerSync), unit: .count))
    row.metrics.append(
      Metric(name: "claims per log write", value: Spread(claimsPerWrite), unit: .count))
    // How much of the latency is the client's: from the scheduled start until the claim's task
    // began running (the pacer's lag plus the wait in the cooperative pool's queue).
    for (name, fraction) in [("p50", 50.0), ("p99", 99.0)] {
      let delays = runs.map { records in
        Double(nearestRank(records.buffer.map(\.value).sorted(), fraction))
      }
      row.metrics.append(
        Metric(name: "task start delay \(name)", value: Spread(delays), unit: .nanos))
    }
    report.rows.append(row)
    if Spread(achieved).median < 0.95 * rate {
      report.notes.append(
        "the store (with this client) did not keep up with the offered rate: the backlog, and so "
          + "the latency, grew during the run")
    }
    report.checks.append(
      Check(
        "every offered claim issued; issued = offered", failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}

/// Starts operations on a fixed schedule from a dedicated thread, each in its own task.
enum Pacer {
  /// Starts `operation(i)` at `start + i / rate` for every `i < total`, records each into
  /// `records` timed from its scheduled start (with the delay until its task began running as
  /// the record's `value`), and returns when all have finished, with the
  /// pacer's largest lag behind the schedule in nanoseconds. Rethrows the first error.
  static func run(
    total: Int, rate: Double, records: OpRecords,
    _ operation: @escaping @Sendable (Int) async throws -> Outcome
  ) async throws -> UInt64 {
    let tracker = Tracker(remaining: total)
    let intervalNanos = 1e9 / rate
    let start = Clock.nanos() + 1_000_000
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      tracker.setDone(done)
      let thread = Thread {
        var lagMax: UInt64 = 0
        for index in 0..<total {
          let due = start + UInt64(Double(index) * intervalNanos)
          var now = Clock.nanos()
          if due > now {
            var deadline = timespec(
              tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
            now = Clock.nanos()
          }
          lagMax = max(lagMax, now &- min(now, due))
          Task {
            let began = Clock.nanos()
            var outcome = Outcome.none
            do {
              outcome = try await operation(index)
            } catch {
              tracker.fail(error)
            }
            records[index] = OpRecord(
              start: due, end: Clock.nanos(), value: began &- min(began, due), outcome: outcome)
            tracker.finishOne()
          }
        }
        tracker.setLag(lagMax)
      }
      thread.name = "coupon-bench.pacer"
      thread.start()
    }
    if let error = tracker.error { throw error }
    return tracker.lag
  }

  /// Counts finished operations and resumes the waiting run after the last one (all its state is
  /// behind one `Mutex`).
  final class Tracker: Sendable {
    private struct State {
      var remaining: Int
      var done: CheckedContinuation<Void, Never>?
      var error: (any Error)?
      var lag: UInt64 = 0
      var lagSet = false
    }
    private let state: Mutex<State>

    init(remaining: Int) { state = Mutex(State(remaining: remaining)) }

    var error: (any Error)? { state.withLock { $0.error } }
    var lag: UInt64 { state.withLock { $0.lag } }

    func setDone(_ done: CheckedContinuation<Void, Never>) {
      let finished = state.withLock { state -> Bool in
        state.done = done
        return state.remaining == 0 && state.lagSet
      }
      if finished { done.resume() }
    }

    func fail(_ error: any Error) {
      state.withLock { if $0.error == nil { $0.error = error } }
    }

    /// The pacer's lag, set once it has started every operation (operations may finish first).
    func setLag(_ lag: UInt64) {
      resumeIfFinished { state in
        state.lag = lag
        state.lagSet = true
      }
    }

    func finishOne() {
      resumeIfFinished { $0.remaining -= 1 }
    }

    private func resumeIfFinished(_ change: (inout State) -> Void) {
      let done = state.withLock { state -> CheckedContinuation<Void, Never>? in
        change(&state)
        guard state.remaining == 0, state.lagSet, let done = state.done else { return nil }
        state.done = nil
        return done
      }
      done?.resume()
    }
  }
}
