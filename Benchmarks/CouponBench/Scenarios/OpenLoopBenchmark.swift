// open-loop: claims offered at a fixed rate (50,000/s by default) whatever the store does.
//
// A closed loop hides slowness: when the store stalls, its callers stop sending, and the stall is
// counted once instead of once per request that should have been sent meanwhile ("coordinated
// omission"). Here a pacer starts claim `i` at `start + i / rate`, each in its own task, never
// waiting for answers, and a claim's latency runs from that intended start, not from when the
// pacer got round to it. A pacer or a pool that falls behind therefore shows in the latencies, as
// it would for a real client.

import CouponStore

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
    let runs = try await bench.repeated("\(name) \(Int(rate))/s × \(total)") { run in
      let campaign = "open-\(run)"
      _ = try await store.createCampaign(ampleCampaign(campaign, stock: total))
      let records = OpRecords(count: total)
      let intervalNanos = 1e9 / rate
      let start = Clock.nanos() + 1_000_000
      var lagMax: UInt64 = 0
      try await withThrowingDiscardingTaskGroup { group in
        var next = 0
        while next < total {
          let now = Clock.nanos()
          while next < total {
            let due = start + UInt64(Double(next) * intervalNanos)
            guard due <= now else { break }
            lagMax = max(lagMax, now - due)
            let index = next
            group.addTask {
              let outcome = Outcome(
                try await store.claim(campaign: campaign, user: "o\(run)-\(index)"))
              records[index] = OpRecord(start: due, end: Clock.nanos(), outcome: outcome)
            }
            next += 1
          }
          if next < total {
            let due = start + UInt64(Double(next) * intervalNanos)
            let now = Clock.nanos()
            // Oversleeping is harmless to the measurement: the schedule, not the pacer, sets
            // every start, and the missed claims go out at once, each timed from its due time.
            if due > now { try await Task.sleep(nanoseconds: due - now) }
          }
        }
      }
      let lastEnd = records.buffer.map(\.end).max() ?? start
      achieved.append(Double(total) / Clock.seconds(from: start, to: lastEnd))
      pacerLag.append(Double(lagMax))
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
    report.rows.append(row)
    if Spread(achieved).median < 0.95 * rate {
      report.notes.append(
        "the store (with this client) did not keep up with the offered rate: the backlog, and so "
          + "the latency, grew during the run")
    }
    report.checks.append(
      Check(
        "every offered claim issued; issued = offered", failures: failures))
    try await bench.closeAndRemove(store, directory)
    return report
  }
}
