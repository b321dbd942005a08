// spread: 1,000 campaigns, each claim to one drawn uniformly, from 1,000 tasks.
//
// What it shows: the cost of many small campaigns against flash-sale's one big one (campaign
// lookup by id, per-campaign state scattered in memory), at the same durability.

import CouponStore

struct SpreadBenchmark: Scenario {
  let name = "spread"
  let summary = "1,000 campaigns, uniform claims from 1,000 tasks"

  static let campaigns = 1_000
  static let tasks = 1_000

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let perTask = bench.operationsPerTask(tasks: Self.tasks)
    let claims = Self.tasks * perTask
    let totalRuns = bench.options.warmups + bench.options.runs
    let (store, directory) = try await bench.openFreshStore(name)
    bench.progress.update("\(name): creating \(Self.campaigns) campaigns")
    // Created concurrently, so their syncs are shared; stock for every run.
    let ids = (0..<Self.campaigns).map { "spread-\($0)" }
    try await withThrowingDiscardingTaskGroup { group in
      for id in ids {
        group.addTask {
          _ = try await store.createCampaign(ampleCampaign(id, stock: claims * totalRuns))
        }
      }
    }
    var logBytes: [Double] = []
    var failures: [String] = []
    let runs = try await bench.repeated("\(name) \(Self.tasks) tasks × \(perTask)") { run in
      let bytesBefore = try await store.statistics().logBytes
      let result = try await ClosedLoop.run(tasks: Self.tasks, perTask: perTask) { index in
        var random = SplitMix64(seed: UInt64(run) << 32 | UInt64(index))
        let campaign = ids[Int(random.next() % UInt64(Self.campaigns))]
        return (Outcome(try await store.claim(campaign: campaign, user: "p\(run)-\(index)")), 0)
      }
      logBytes.append(Double(try await store.statistics().logBytes - bytesBefore) / Double(claims))
      let claimed = result.records.count(.claimed)
      if claimed != claims { failures.append("run \(run): \(claimed) of \(claims) claimed") }
      return result
    }
    let all = try await store.campaigns()
    let issued = all.reduce(0) { $0 + $1.issued }
    if issued != claims * totalRuns { failures.append("\(issued) issued of \(claims * totalRuns)") }
    if all.contains(where: { $0.issued > $0.stock }) { failures.append("a campaign oversold") }
    var row = ResultRow(
      label: "\(Self.campaigns) campaigns", parameter: Double(Self.tasks), unit: "claims/s")
    row.throughput = Spread(runs.map(\.operationsPerSecond))
    row.setClosedLoopLimit(
      bench.baseline, callers: Self.tasks, logBytesPerOp: Spread(logBytes).median)
    row.setLatency(of: "claim", loops: runs)
    row.addCPUMetrics(runs, unit: "claim")
    report.rows.append(row)
    report.checks.append(
      Check(
        "every claim issued; issued summed over campaigns = claims; none oversold",
        failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}
