// flash-sale: one campaign with ample stock, distinct users, a closed loop at each concurrency of
// the sweep (1, 16, 256, 10,000 tasks by default).
//
// What it shows: at 1 task, a claim's latency against one fdatasync (group commit cannot help a
// lone caller, so the ideal is one sync per claim); as tasks grow, how many claims share each sync
// (the ideal is C per sync until the writer's CPU or the disk's bandwidth is the limit).

import CouponStore

struct FlashSaleBenchmark: Scenario {
  let name = "flash-sale"
  let summary = "one campaign, ample stock, distinct users: durable claims/s by concurrency"

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let (store, directory) = try await bench.openFreshStore(name)
    for (level, tasks) in bench.options.concurrency.enumerated() {
      // Each level is held against the disk as it is just before it: the sweep takes a minute,
      // and on a shared machine the fdatasync latency moves in a minute.
      let baseline = level == 0 ? bench.baseline : try bench.remeasuredBaseline()
      let perTask = bench.operationsPerTask(tasks: tasks)
      let claims = tasks * perTask
      var failures: [String] = []
      var logBytes: [Double] = []
      let runs = try await bench.repeated("\(name) \(tasks) tasks × \(perTask)") { run in
        let campaign = "flash-\(tasks)-\(run)"
        _ = try await store.createCampaign(ampleCampaign(campaign, stock: claims))
        let bytesBefore = try await store.statistics().logBytes
        let result = try await ClosedLoop.run(tasks: tasks, perTask: perTask) { index in
          // Users are unique across runs too, so no user's coupon list grows run by run.
          let outcome = Outcome(
            try await store.claim(campaign: campaign, user: "f\(run)-\(index)"))
          return (outcome, 0)
        }
        logBytes.append(
          Double(try await store.statistics().logBytes - bytesBefore) / Double(claims))
        let claimed = result.records.count(.claimed)
        let issued = try await store.campaign(campaign)?.issued ?? -1
        if claimed != claims || issued != claims {
          failures.append("run \(run): \(claimed) claimed, \(issued) issued of \(claims)")
        }
        return result
      }
      var row = ResultRow(
        label: "\(tasks) task" + (tasks == 1 ? "" : "s"), parameter: Double(tasks), unit: "claims/s"
      )
      row.throughput = Spread(runs.map(\.operationsPerSecond))
      row.syncLatency = baseline.syncLatency
      row.setClosedLoopLimit(baseline, callers: tasks, logBytesPerOp: Spread(logBytes).median)
      row.setLatency(of: "claim", loops: runs)
      row.addCPUMetrics(runs, unit: "claim")
      report.rows.append(row)
      report.checks.append(
        Check(
          "\(tasks) task\(tasks == 1 ? "" : "s"): all \(claims) claims issued, issued = claims",
          failures: failures))
    }
    if let single = report.rows.first(where: { $0.parameter == 1 })?.throughput?.median,
      let sixteen = report.rows.first(where: { $0.parameter == 16 })?.throughput?.median
    {
      report.notes.append(
        "16 tasks do \(formatRatio(sixteen / single)) the claims/s of 1 task (group commit)")
    }
    try await bench.closeAndRemove(store, directory)
    return report
  }
}
