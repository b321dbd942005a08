// batch: `claim(batch:)` with batches of 1,000 claims, from 1 and from 4 concurrent callers.
//
// What it shows: the engine's rate when the per-call overhead (task, queue hand-off, continuation)
// is paid once per 1,000 claims, so that the writer's decide-encode-apply loop and the disk's
// bandwidth are what remain. The requests are built before the clock starts: only the store is
// timed.

import CouponStore

struct BatchBenchmark: Scenario {
  let name = "batch"
  let summary = "claim(batch:) with batches of 1,000, from 1 and 4 callers"

  static let batchSize = 1_000
  static let callers = [1, 4]

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let (store, directory) = try await bench.openFreshStore(name)
    let claimsPerRun = bench.options.quick ? 50_000 : 500_000
    var failures: [String] = []
    for callers in Self.callers {
      let perCaller = max(1, claimsPerRun / Self.batchSize / callers)
      let claims = callers * perCaller * Self.batchSize
      var logBytes: [Double] = []
      let runs = try await bench.repeated("\(name) \(callers) caller(s) × \(perCaller) batches") {
        run in
        let campaign = "batch-\(callers)-\(run)"
        _ = try await store.createCampaign(ampleCampaign(campaign, stock: claims))
        let batches = (0..<callers * perCaller).map { batch in
          (0..<Self.batchSize).map { item in
            ClaimRequest(campaign: campaign, user: "b\(run)-\(batch)-\(item)")
          }
        }
        let bytesBefore = try await store.statistics().logBytes
        let result = try await ClosedLoop.run(tasks: callers, perTask: perCaller) { index in
          let results = try await store.claim(batch: batches[index])
          let claimed = results.reduce(0) { $0 + ($1.coupon == nil ? 0 : 1) }
          return (claimed == Self.batchSize ? .claimed : .none, UInt64(claimed))
        }
        logBytes.append(
          Double(try await store.statistics().logBytes - bytesBefore) / Double(claims))
        let claimed = result.records.buffer.reduce(0) { $0 + Int($1.value) }
        let issued = try await store.campaign(campaign)?.issued ?? -1
        if claimed != claims || issued != claims {
          failures.append(
            "\(callers) callers, run \(run): \(claimed) claimed, \(issued) issued of \(claims)")
        }
        return result
      }
      var row = ResultRow(
        label: "\(callers) caller" + (callers == 1 ? "" : "s"), parameter: Double(callers),
        unit: "claims/s")
      row.throughput = Spread(runs.map { Double(claims) / $0.seconds })
      row.setClosedLoopLimit(
        bench.baseline, callers: callers, opsPerCall: Self.batchSize,
        logBytesPerOp: Spread(logBytes).median)
      row.setLatency(
        of: "batch of \(Self.batchSize) claims", loops: runs)
      row.addCPUMetrics(runs, operationsPerRecord: Self.batchSize, unit: "claim")
      report.rows.append(row)
    }
    report.checks.append(
      Check(
        "every claim of every batch issued; issued = claims", failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}
