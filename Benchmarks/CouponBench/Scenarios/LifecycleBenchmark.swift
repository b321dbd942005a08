// lifecycle: claim → lock → redeem cycles from 1,000 concurrent users on one coupon book, and
// the upload of that book.
//
// What it shows: the cost of a coupon's whole life, three durable writes in a row per cycle, so a
// lone caller's ideal is three fdatasyncs per cycle and C callers share each sync; and how fast
// `addCodes` fills a pool (1,000,000 codes per run, quick 20,000), timed from the call to its
// durable return. Each run uploads a new book, then its users claim from it (a uniformly random
// code), lock and redeem.
//
// It drives the coupon-book calls `lock(code:user:)` and `redeem(code:user:)` through
// ``LifecycleCalls``.

import CouponStore

/// The lifecycle calls the scenario drives, as closures so this file compiles before they exist.
struct LifecycleCalls: Sendable {
  /// Locks `code` for `user`; `true` if the answer was "locked".
  var lock: @Sendable (_ store: CouponStore, _ code: String, _ user: String) async throws -> Bool
  /// Redeems `code` for `user` (who holds its lock); `true` if the answer was "redeemed".
  var redeem: @Sendable (_ store: CouponStore, _ code: String, _ user: String) async throws -> Bool

  static let available: LifecycleCalls? = LifecycleCalls(
    lock: { store, code, user in
      if case .locked = try await store.lock(code: code, user: user) { true } else { false }
    },
    redeem: { store, code, user in
      if case .redeemed = try await store.redeem(code: code, user: user) { true } else { false }
    })
}

struct LifecycleBenchmark: Scenario {
  let name = "lifecycle"
  let summary = "upload a 1,000,000-code book, then claim → lock → redeem from 1,000 users"

  static let tasks = 1_000

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    guard let calls = LifecycleCalls.available else {
      report.skipped =
        "needs lock/redeem (the coupon-book lifecycle, branch books); see the TODO in "
        + "LifecycleBenchmark.swift"
      return report
    }
    // Three durable writes per cycle: a round costs three syncs.
    let perTask = max(2, bench.operationsPerTask(tasks: Self.tasks) / 3)
    let cycles = Self.tasks * perTask
    let (store, directory) = try await bench.openFreshStore(name)
    var failures: [String] = []
    var logBytes: [Double] = []
    let uploadCount = max(cycles, bench.options.quick ? 20_000 : 1_000_000)
    var uploadRates: [Double] = []
    let runs = try await bench.repeated("\(name) \(Self.tasks) tasks × \(perTask)") { run in
      let campaign = "life-\(run)"
      _ = try await store.createCampaign(
        CampaignSpec(id: campaign, name: campaign, stock: 0, codes: .pool))
      let codes = (0..<uploadCount).map { "L\(run)-\($0)" }
      let uploadStart = Clock.nanos()
      let uploaded = try await store.addCodes(codes, to: campaign)
      uploadRates.append(
        Double(uploadCount) / Clock.seconds(from: uploadStart, to: Clock.nanos()))
      if uploaded.added != uploadCount {
        failures.append("run \(run): \(uploaded.added) of \(uploadCount) codes added")
      }
      let bytesBefore = try await store.statistics().logBytes
      let result = try await ClosedLoop.run(tasks: Self.tasks, perTask: perTask) { index in
        let user = "l\(run)-\(index)"
        guard let coupon = try await store.claim(campaign: campaign, user: user).coupon else {
          return (.none, 0)
        }
        guard try await calls.lock(store, coupon.code, user) else { return (.none, 1) }
        guard try await calls.redeem(store, coupon.code, user) else { return (.none, 2) }
        return (.claimed, 3)
      }
      logBytes.append(Double(try await store.statistics().logBytes - bytesBefore) / Double(cycles))
      let completed = result.records.count(.claimed)
      if completed != cycles { failures.append("run \(run): \(completed) of \(cycles) cycles") }
      return result
    }
    let redeemed = try await store.statistics().couponsByState[.redeemed] ?? 0
    let expected = cycles * (bench.options.warmups + bench.options.runs)
    if redeemed != expected { failures.append("\(redeemed) redeemed of \(expected)") }
    var row = ResultRow(
      label: "\(Self.tasks) tasks", parameter: Double(Self.tasks), unit: "cycles/s")
    row.throughput = Spread(runs.map(\.operationsPerSecond))
    // A cycle is three writes, each waiting for its own sync: a third of the claim limit.
    row.setClosedLoopLimit(
      bench.baseline, callers: Self.tasks, logBytesPerOp: Spread(logBytes).median)
    row.limit = row.limit.map { $0 / 3 }
    row.limitBasis = row.limitBasis.map { "3 syncs per cycle; \($0)" }
    row.setLatency(of: "cycle (3 writes)", loops: runs)
    report.rows.append(row)
    var upload = ResultRow(
      label: "upload \(formatRate(Double(uploadCount))) codes", unit: "codes/s")
    upload.throughput = Spread(uploadRates)
    report.rows.append(upload)
    report.checks.append(
      Check(
        "every code uploaded; every cycle claimed, locked and redeemed; redeemed count = cycles",
        failures: failures))
    try await bench.closeAndRemove(store, directory, noting: &report)
    return report
  }
}
