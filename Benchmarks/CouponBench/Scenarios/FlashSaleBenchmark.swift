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
      var baseline = level == 0 ? bench.baseline : try bench.remeasuredBaseline()
      // A lone caller is paired with the raw disk claim by claim (see `pairedRun`).
      let probe =
        tasks == 1 && baseline.synchronous
        ? try SyncProbe(directory: bench.root, name: "paired.probe", appendBytes: 64) : nil
      let perTask = bench.operationsPerTask(tasks: tasks)
      let claims = tasks * perTask
      var failures: [String] = []
      var logBytes: [Double] = []
      let results = try await bench.repeated("\(name) \(tasks) tasks × \(perTask)") { run in
        let campaign = "flash-\(tasks)-\(run)"
        _ = try await store.createCampaign(ampleCampaign(campaign, stock: claims))
        let bytesBefore = try await store.statistics().logBytes
        let claim = { @Sendable (index: Int) async throws -> (Outcome, UInt64) in
          // Users are unique across runs too, so no user's coupon list grows run by run.
          (Outcome(try await store.claim(campaign: campaign, user: "f\(run)-\(index)")), 0)
        }
        let result: (loop: LoopRun, probe: [UInt64])
        if let probe {
          result = try await pairedRun(count: claims, probe: probe, claim)
        } else {
          result = (try await ClosedLoop.run(tasks: tasks, perTask: perTask, claim), [])
        }
        logBytes.append(
          Double(try await store.statistics().logBytes - bytesBefore) / Double(claims))
        let claimed = result.loop.records.count(.claimed)
        let issued = try await store.campaign(campaign)?.issued ?? -1
        if claimed != claims || issued != claims {
          failures.append("run \(run): \(claimed) claimed, \(issued) issued of \(claims)")
        }
        return result
      }
      let runs = results.map(\.loop)
      var row = ResultRow(
        label: "\(tasks) task" + (tasks == 1 ? "" : "s"), parameter: Double(tasks), unit: "claims/s"
      )
      if probe != nil {
        baseline.syncLatency = LatencySummary.medianOf(
          results.map { LatencySummary(sorted: $0.probe.sorted()) })
      } else {
        row.addCPUMetrics(runs, unit: "claim")
      }
      row.throughput = Spread(runs.map(\.operationsPerSecond))
      row.syncLatency = baseline.syncLatency
      row.setClosedLoopLimit(baseline, callers: tasks, logBytesPerOp: Spread(logBytes).median)
      row.setLatency(of: "claim", loops: runs)
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
    if bench.baseline.synchronous, bench.options.concurrency.contains(1) {
      report.notes.append(
        "1 task is paired: each claim follows one raw 64-byte append + fdatasync on a probe file "
          + "beside the store, so claim and disk are sampled under the same conditions; its "
          + "sync columns and limit use those paired samples")
    }
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }

  /// A lone caller's run, each claim preceded by one raw append + `fdatasync` on `probe`: on a
  /// shared disk the fdatasync latency moves within seconds (between 0.2 and 4 ms on the
  /// development machine), so only samples taken side by side make "claim latency ÷ fdatasync
  /// latency" mean anything. The run's wall time counts the claims only (the sum of their
  /// latencies), so its rate is what a caller claiming back to back would get.
  private func pairedRun(
    count: Int, probe: SyncProbe, _ claim: @Sendable (Int) async throws -> (Outcome, UInt64)
  ) async throws -> (loop: LoopRun, probe: [UInt64]) {
    let records = OpRecords(count: count)
    var probeSamples: [UInt64] = []
    probeSamples.reserveCapacity(count)
    _ = try probe.samples(secondsMax: 0, samplesMin: 1, samplesMax: 1)
    let started = Clock.nanos()
    var claimNanos: UInt64 = 0
    for index in 0..<count {
      probeSamples.append(try probe.sample())
      let start = Clock.nanos()
      let (outcome, value) = try await claim(index)
      let end = Clock.nanos()
      records[index] = OpRecord(start: start, end: end, value: value, outcome: outcome)
      claimNanos += end - start
    }
    let loop = LoopRun(
      records: records, startNanos: started, wallNanos: claimNanos, cpuSeconds: .nan)
    return (loop, probeSamples)
  }
}
