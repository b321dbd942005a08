// double-dip: 10,000 concurrent claims by one user on a campaign with a per-user limit of 1.
//
// What it shows: that exactly one wins and every other caller is told "already claimed" with the
// winner's very coupon (a retried request is harmless), and how fast 10,000 such answers come back.
// Each task records a fingerprint of the code it was shown, so recording allocates nothing.

import CouponStore

struct DoubleDipBenchmark: Scenario {
  let name = "double-dip"
  let summary = "10,000 concurrent claims by one user: exactly one wins"

  static let tasks = 10_000

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let (store, directory) = try await bench.openFreshStore(name)
    var failures: [String] = []
    let runs = try await bench.repeated("\(name) \(Self.tasks) tasks") { run in
      let campaign = "dd-\(run)"
      let user = "dipper-\(run)"
      _ = try await store.createCampaign(ampleCampaign(campaign, stock: Self.tasks))
      let result = try await ClosedLoop.run(tasks: Self.tasks, perTask: 1) { _ in
        let answer = try await store.claim(campaign: campaign, user: user)
        switch answer {
        case .claimed(let coupon): return (.claimed, fingerprint(coupon.code))
        case .limitReached(let existing):
          // Exactly one coupon held; anything else is recorded as a mismatch (0).
          return (.limitReached, existing.count == 1 ? fingerprint(existing[0].code) : 0)
        default: return (Outcome(answer), 0)
        }
      }
      let records = result.records.buffer
      let winners = records.filter { $0.outcome == .claimed }
      let held = try await store.coupons(of: user)
      let issued = try await store.campaign(campaign)?.issued ?? -1
      var problems: [String] = []
      if winners.count != 1 { problems.append("\(winners.count) winners") }
      if records.contains(where: { $0.outcome != .claimed && $0.outcome != .limitReached }) {
        problems.append("an answer other than claimed or limitReached")
      }
      if held.count != 1 || issued != 1 {
        problems.append("user holds \(held.count), issued \(issued)")
      }
      if let code = held.first?.code {
        let expected = fingerprint(code)
        let mismatched = records.filter { $0.value != expected }.count
        if mismatched > 0 { problems.append("\(mismatched) answers named another coupon") }
      }
      if !problems.isEmpty { failures.append("run \(run): " + problems.joined(separator: ", ")) }
      return result
    }
    var row = ResultRow(label: "\(Self.tasks) tasks, 1 user", unit: "answers/s")
    row.throughput = Spread(runs.map(\.operationsPerSecond))
    row.setLatency(of: "claim", loops: runs)
    report.rows.append(row)
    report.notes.append(
      "no disk limit for answers/s: only the winner writes; the others wait for its fdatasync")
    report.checks.append(
      Check(
        "exactly one winner; \(Self.tasks - 1) told limitReached with the winner's code",
        failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}
