// sell-out: a stock of 1,000 and 200,000 attempts from 10,000 tasks (quick: 20,000).
//
// What it shows: that exactly the stock is issued under a stampede (checked from the callers'
// answers and again from the store's own reads), how long the stock lasts, and how fast the
// latecomers hear "sold out". A rejection writes nothing, so once the stock is gone the disk is
// out of the loop: the rejection rate measures the queue and the writer alone.

import CouponStore

struct SellOutBenchmark: Scenario {
  let name = "sell-out"
  let summary = "stock 1,000, 200,000 attempts from 10,000 tasks: exactly 1,000 issued"

  static let stock = 1_000
  static let tasks = 10_000

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let perTask = bench.options.quick ? 2 : 20
    let attempts = Self.tasks * perTask
    let (store, directory) = try await bench.openFreshStore(name)
    var failures: [String] = []
    var sellOutNanos: [Double] = []
    var rejectionsPerSecond: [Double] = []
    let runs = try await bench.repeated("\(name) \(attempts) attempts") { run in
      let campaign = "sellout-\(run)"
      _ = try await store.createCampaign(ampleCampaign(campaign, stock: Self.stock))
      let result = try await ClosedLoop.run(tasks: Self.tasks, perTask: perTask) { index in
        (Outcome(try await store.claim(campaign: campaign, user: "s\(run)-\(index)")), 0)
      }
      let records = result.records.buffer
      let claimed = records.filter { $0.outcome == .claimed }
      let soldOut = records.filter { $0.outcome == .soldOut }
      // Sold out when the last successful claim was acknowledged.
      sellOutNanos.append(
        Double((claimed.map(\.end).max() ?? result.startNanos) - result.startNanos))
      rejectionsPerSecond.append(Double(soldOut.count) / result.seconds)
      let issued = try await store.campaign(campaign)?.issued ?? -1
      let listed = try await allClaims(store, campaign)
      var problems: [String] = []
      if claimed.count != Self.stock { problems.append("\(claimed.count) claimed") }
      if soldOut.count != attempts - Self.stock { problems.append("\(soldOut.count) sold out") }
      if issued != Self.stock { problems.append("\(issued) issued") }
      if listed.count != Self.stock { problems.append("\(listed.count) listed") }
      if Set(listed.map(\.code)).count != listed.count { problems.append("duplicate codes") }
      if Set(listed.map(\.user)).count != listed.count { problems.append("a user twice") }
      if !problems.isEmpty { failures.append("run \(run): " + problems.joined(separator: ", ")) }
      return result
    }
    var row = ResultRow(label: "\(Self.tasks) tasks × \(perTask)", unit: "attempts/s")
    row.throughput = Spread(runs.map(\.operationsPerSecond))
    row.setLatency(of: "attempt", loops: runs)
    let sellOut = Spread(sellOutNanos)
    row.metrics.append(
      Metric(
        name: "sold out after", value: sellOut, unit: .nanos,
        relativeTo: bench.baseline.synchronous ? "fdatasync p50" : nil,
        ratio: bench.baseline.synchronous
          ? ratio(sellOut.median, bench.baseline.syncLatency.p50) : nil))
    row.metrics.append(
      Metric(name: "rejections (sold out)", value: Spread(rejectionsPerSecond), unit: .perSecond))
    report.rows.append(row)
    report.notes.append(
      "no disk limit for attempts/s: a rejection writes nothing; the sell-out time's ideal is a "
        + "few fdatasyncs (1,000 claims fit in one batch)")
    report.checks.append(
      Check(
        "exactly \(Self.stock) issued (answers, campaign, claim list), all others sold out, "
          + "distinct codes and users", failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}
