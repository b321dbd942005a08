// recovery: build a store of N claims (1,000,000 by default, 10,000,000 with --large), close it,
// and time reopening it: seconds, and log records replayed per second.
//
// The limit it is held against is reading the same log files with plain `read` calls, measured
// just before, with the files in the page cache as they are for the reopen (this runner does not
// drop the machine's caches; it shares the machine). Replay cannot beat reading its input.
//
// The second row takes a snapshot (``SnapshotHook/take``) and reopens again: snapshot load plus
// the log after it.

import CouponStore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How the recovery scenario takes a snapshot, once the store can.
enum SnapshotHook {
  static let take: (@Sendable (CouponStore) async throws -> Void)? = { store in
    _ = try await store.snapshot()
  }
}

struct RecoveryBenchmark: Scenario {
  let name = "recovery"
  let summary = "reopen a store of 1,000,000 claims (10,000,000 with --large): records/s"

  static let batchSize = 1_000
  static let builders = 4

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let claims = bench.options.recoveryClaims
    let (store, directory) = try await bench.openFreshStore(name)
    try await Self.build(store, claims: claims, label: name, bench)
    let logBytes = try await store.statistics().logBytes
    try await store.close()

    var failures: [String] = []
    report.rows.append(
      try await measureReopen(
        directory, label: "\(formatRate(Double(claims))) claims, log only", claims: claims,
        logBytes: logBytes, bench, &failures))
    if let snapshot = SnapshotHook.take {
      let reopened = try await CouponStore.open(directory: directory, options: bench.storeOptions)
      try await snapshot(reopened)
      try await reopened.close()
      report.rows.append(
        try await measureReopen(
          directory, label: "\(formatRate(Double(claims))) claims, snapshot", claims: claims,
          logBytes: try directoryBytes(directory), fromSnapshot: true, bench, &failures))
    }
    report.notes.append("the log is in the page cache when reopened (caches are not dropped)")
    report.checks.append(
      Check(
        "every reopen replays every record and reads back \(claims) issued", failures: failures))
    if !bench.options.keep { try? FileManager.default.removeItem(atPath: directory) }
    return report
  }

  /// Claims `claims` coupons in batches from a few concurrent callers (not timed: only the
  /// reopen is), showing progress under `label`.
  static func build(_ store: CouponStore, claims: Int, label: String, _ bench: Bench) async throws {
    _ = try await store.createCampaign(ampleCampaign("recovery", stock: claims))
    let batches = (claims + Self.batchSize - 1) / Self.batchSize
    let done = SharedCounter()
    try await withThrowingDiscardingTaskGroup { group in
      for builder in 0..<Self.builders {
        group.addTask {
          for batch in stride(from: builder, to: batches, by: Self.builders) {
            let range = batch * Self.batchSize..<min(claims, (batch + 1) * Self.batchSize)
            let requests = range.map { ClaimRequest(campaign: "recovery", user: "r\($0)") }
            _ = try await store.claim(batch: requests)
            let total = done.add(requests.count)
            bench.progress.update("\(label): building the store, \(total)/\(claims) claims")
          }
        }
      }
    }
  }

  /// Times reopening `directory`. Log only: records replayed per second. `fromSnapshot`: claims
  /// restored per second (snapshot load plus the log after it), against reading every file of
  /// the directory.
  private func measureReopen(
    _ directory: String, label: String, claims: Int, logBytes: Int64,
    fromSnapshot: Bool = false, _ bench: Bench, _ failures: inout [String]
  ) async throws -> ResultRow {
    bench.progress.update("recovery: reading the log files")
    _ = try readAll(directory)  // Brings the files into the page cache, as the reopen finds them.
    let readSeconds = try readAll(directory)
    var records: [Int] = []
    let runs = try await bench.repeated("recovery: reopen \(label)") { run in
      let started = Clock.nanos()
      let store = try await CouponStore.open(directory: directory, options: bench.storeOptions)
      let seconds = Clock.seconds(from: started, to: Clock.nanos())
      let summary = store.recovery
      let issued = try await store.statistics().issued
      try await store.close()
      if issued != claims { failures.append("\(label), run \(run): \(issued) issued of \(claims)") }
      let restored = fromSnapshot ? claims : summary.recordsReplayed
      records.append(restored)
      return (seconds, restored)
    }
    var row = ResultRow(label: label, unit: fromSnapshot ? "claims/s" : "records/s")
    row.throughput = Spread(runs.map { Double($0.1) / $0.0 })
    let replayed = records.max() ?? 0
    row.limit = Double(replayed) / readSeconds
    row.limitBasis =
      "reading the \(formatBytes(Double(logBytes))) \(fromSnapshot ? "of files" : "log") with read(2) "
      + "takes "
      + formatNanos(readSeconds * 1e9)
    row.logBytesPerOp = Double(logBytes) / Double(max(claims, 1))
    let seconds = Spread(runs.map { $0.0 * 1e9 })
    row.metrics.append(Metric(name: "open", value: seconds, unit: .nanos))
    row.metrics.append(
      Metric(
        name: fromSnapshot ? "files loaded" : "log replayed",
        value: Spread(runs.map { Double(logBytes) / $0.0 }),
        unit: .bytesPerSecond,
        relativeTo: "the raw append bandwidth",
        ratio: ratio(
          Double(logBytes) / seconds.median * 1e9, bench.baseline.bandwidthBytesPerSecond)))
    return row
  }

  /// The bytes of every file of `directory`.
  private func directoryBytes(_ directory: String) throws -> Int64 {
    try FileManager.default.contentsOfDirectory(atPath: directory).reduce(Int64(0)) {
      let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + $1)
      return $0 + ((attributes[.size] as? NSNumber)?.int64Value ?? 0)
    }
  }

  /// Reads every file of `directory` with 1 MiB `read`s; returns the seconds taken.
  private func readAll(_ directory: String) throws -> Double {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    let started = Clock.nanos()
    for name in names where name.hasSuffix(".seg") {
      let path = directory + "/" + name
      let fd = open(path, O_RDONLY | O_CLOEXEC)
      guard fd >= 0 else { throw BenchError.system("open", path) }
      defer { close(fd) }
      while true {
        let count = read(fd, buffer.baseAddress, buffer.count)
        if count < 0 { throw BenchError.system("read", path) }
        if count == 0 { break }
      }
    }
    return Clock.seconds(from: started, to: Clock.nanos())
  }
}
