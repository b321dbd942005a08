// snapshot-stall: claim latency at 10,000 concurrent claimants while a snapshot of a large store
// is written, against the same load without a snapshot.
//
// The store is built like the recovery scenario's (1,000,000 claims; 10,000,000 with --large).
// Each run measures twice, for the same wall time: first 10,000 tasks claim in a closed loop
// from the moment `snapshot()` is asked until it returns (the snapshot is durable) or for at most
// 3 s, then, once the snapshot is done, the same load runs again, as long, with no snapshot. The first run (the warm-up) folds the whole log;
// each later one loads the previous snapshot, folds the log since, and writes a new one: the
// steady state of a store that snapshots automatically. The ratio of the two p99s is what a
// snapshot costs the callers (the target is ≤ 2×).

import CouponStore
import Foundation
import Synchronization

struct SnapshotStallBenchmark: Scenario {
  let name = "snapshot-stall"
  let summary =
    "claim latency at 10,000 tasks during a snapshot of the recovery-sized store, and without"

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let claims = bench.options.recoveryClaims
    let tasks = bench.options.quick ? 1_000 : 10_000
    let (store, directory) = try await bench.openFreshStore(name)
    try await RecoveryBenchmark.build(store, claims: claims, label: name, bench)
    let baseline = try bench.remeasuredBaseline()

    var failures: [String] = []
    var snapshotSeconds: [Double] = []
    // The loaded half of a run ends with the snapshot or after this long, whichever is first, so
    // that the store (and the next fold) does not grow by millions of claims per run.
    let duringNanosMax: UInt64 = bench.options.quick ? 500_000_000 : 3_000_000_000
    let runs = try await bench.repeated("\(name) \(tasks) tasks") {
      run -> (during: TimedLoop.Result, without: TimedLoop.Result) in
      let campaign = "stall-\(run)"
      _ = try await store.createCampaign(ampleCampaign(campaign, stock: 1_000_000_000))
      let started = Clock.nanos()
      let snapshotDone = StopFlag()
      let snapshot = Task {
        defer { snapshotDone.set() }
        _ = try await store.snapshot()
        return Clock.nanos()
      }
      let during = try await TimedLoop.run(
        tasks: tasks, nanos: 50_000_000...duringNanosMax, until: snapshotDone,
        user: { "s\(run)-\($0)-\($1)" }, campaign: campaign, store: store)
      snapshotSeconds.append(Clock.seconds(from: started, to: try await snapshot.value))
      let without = try await TimedLoop.run(
        tasks: tasks, nanos: during.wallNanos...during.wallNanos, until: nil,
        user: { "w\(run)-\($0)-\($1)" }, campaign: campaign, store: store)
      let issued = try await store.campaign(campaign)?.issued ?? -1
      let claimed = during.latencies.count + without.latencies.count
      if during.failures + without.failures > 0 || issued != claimed {
        failures.append(
          "run \(run): \(during.failures + without.failures) claims not claimed, \(issued) "
            + "issued of \(claimed)")
      }
      return (during, without)
    }
    for (label, results) in [
      ("\(tasks) tasks, no snapshot", runs.map(\.without)),
      ("\(tasks) tasks, during snapshot", runs.map(\.during)),
    ] {
      var row = ResultRow(label: label, parameter: Double(tasks), unit: "claims/s")
      row.throughput = Spread(results.map(\.operationsPerSecond))
      row.syncLatency = baseline.syncLatency
      row.setLatency(of: "claim", runs: results.map(\.latencies))
      report.rows.append(row)
    }
    if let without = report.rows.first?.latency?.p99, let during = report.rows.last?.latency?.p99 {
      report.rows[1].metrics.append(
        Metric(
          name: "p99 during ÷ p99 without", value: Spread([during / without]), unit: .count,
          relativeTo: "the target 2", ratio: during / without / 2))
    }
    report.rows[1].metrics.append(
      Metric(
        name: "snapshot (ask to durable)", value: Spread(snapshotSeconds.map { $0 * 1e9 }),
        unit: .nanos))
    report.notes.append(
      "\(formatRate(Double(claims))) claims in the store before the first run; each run pairs a "
        + "load during one snapshot with the same load, as long, without")
    report.checks.append(
      Check("every claim of every run issued; issued = claims", failures: failures))
    try await bench.closeAndRemove(store, directory)
    return report
  }
}

/// A closed loop of claims that runs for a while rather than for a count.
enum TimedLoop {
  struct Result: Sendable {
    /// Every claim's latency, sorted.
    var latencies: [UInt64]
    /// Claims whose answer was not `.claimed`.
    var failures: Int
    var wallNanos: UInt64

    var operationsPerSecond: Double {
      Double(latencies.count) / (Double(max(wallNanos, 1)) / 1e9)
    }
  }

  /// `tasks` tasks claim from `campaign` back to back, user `user(task, index)` for the
  /// task's `index`-th claim, for a time within `nanos`: until `until` is set (if given) but at
  /// least `nanos.lowerBound`, and at most `nanos.upperBound`.
  static func run(
    tasks: Int, nanos: ClosedRange<UInt64>, until: StopFlag?,
    user: @escaping @Sendable (Int, Int) -> String, campaign: String, store: CouponStore
  ) async throws -> Result {
    let stop = StopFlag()
    let started = Clock.nanos()
    let (latencies, failures) = try await withThrowingTaskGroup(
      of: ([UInt64], Int)?.self
    ) { group in
      // The timer (a benchmark's clock, polled every millisecond; no test waits on it).
      group.addTask {
        while true {
          let elapsed = Clock.nanos() - started
          if elapsed >= nanos.upperBound
            || (elapsed >= nanos.lowerBound && (until?.isSet ?? true))
          {
            break
          }
          try await Task.sleep(nanoseconds: 1_000_000)
        }
        stop.set()
        return nil
      }
      for task in 0..<tasks {
        group.addTask {
          var latencies: [UInt64] = []
          var failures = 0
          var index = 0
          while !stop.isSet {
            let start = Clock.nanos()
            let result = try await store.claim(campaign: campaign, user: user(task, index))
            latencies.append(Clock.nanos() - start)
            if case .claimed = result {} else { failures += 1 }
            index += 1
          }
          return (latencies, failures)
        }
      }
      var latencies: [UInt64] = []
      var failures = 0
      for try await result in group {
        guard let (taskLatencies, taskFailures) = result else { continue }
        latencies += taskLatencies
        failures += taskFailures
      }
      return (latencies, failures)
    }
    return Result(
      latencies: latencies.sorted(), failures: failures, wallNanos: Clock.nanos() - started)
  }
}

/// A flag the loop's tasks poll (set once).
final class StopFlag: Sendable {
  private let value = Atomic<Bool>(false)
  var isSet: Bool { value.load(ordering: .relaxed) }
  func set() { value.store(true, ordering: .relaxed) }
}
