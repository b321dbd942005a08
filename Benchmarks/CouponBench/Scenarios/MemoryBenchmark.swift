// memory: what one claim costs in RAM and on disk.
//
// RAM: the process's resident set (/proc/self/statm) before and after N claims, divided by N,
// after a first batch has grown every buffer to its working size, and with the heap trimmed
// before each reading (freed memory of earlier scenarios would otherwise absorb the growth). It counts everything the claims
// made resident: the store's state (coupon records, codes, user names, indexes), and whatever the
// allocator keeps. Disk: the data directory's files, by length and by blocks allocated.

import CouponStore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

struct MemoryBenchmark: Scenario {
  let name = "memory"
  let summary = "resident memory and disk bytes per claim"

  static let batchSize = 1_000

  func run(_ bench: Bench) async throws -> ScenarioReport {
    var report = ScenarioReport(name: name, summary: summary)
    let claims = bench.options.memoryClaims
    let (store, directory) = try await bench.openFreshStore(name)
    _ = try await store.createCampaign(ampleCampaign("memory", stock: claims + Self.batchSize))
    try await claimBatch(store, from: 0, count: Self.batchSize)
    Self.trimHeap()
    let residentBefore = Self.residentBytes()
    let diskBefore = try Self.directoryBytes(directory)
    var done = 0
    while done < claims {
      let count = min(Self.batchSize, claims - done)
      try await claimBatch(store, from: Self.batchSize + done, count: count)
      done += count
      bench.progress.update("memory: \(done)/\(claims) claims")
    }
    Self.trimHeap()
    let residentAfter = Self.residentBytes()
    let diskAfter = try Self.directoryBytes(directory)
    let issued = try await store.campaign("memory")?.issued ?? -1
    try await bench.closeAndRemove(store, directory, noting: &report)

    var row = ResultRow(label: "\(formatRate(Double(claims))) claims", unit: "")
    let perClaim = { (bytes: Int64) in Spread([Double(bytes) / Double(claims)]) }
    row.metrics.append(
      Metric(
        name: "resident memory per claim", value: perClaim(residentAfter - residentBefore),
        unit: .bytes))
    row.metrics.append(
      Metric(
        name: "disk per claim (file length)", value: perClaim(diskAfter.length - diskBefore.length),
        unit: .bytes))
    row.metrics.append(
      Metric(
        name: "disk per claim (blocks allocated)",
        value: perClaim(diskAfter.allocated - diskBefore.allocated), unit: .bytes))
    report.rows.append(row)
    report.notes.append(
      "one measurement, not repeated: memory does not vary run to run the way time does; "
        + "no disk limit applies")
    report.checks.append(
      Check(
        "\(claims + Self.batchSize) issued", issued == claims + Self.batchSize, "\(issued) issued"))
    return report
  }

  private func claimBatch(_ store: CouponStore, from first: Int, count: Int) async throws {
    let requests = (first..<first + count).map { ClaimRequest(campaign: "memory", user: "m\($0)") }
    _ = try await store.claim(batch: requests)
  }

  /// Hands the heap's free pages back to the kernel (glibc's `malloc_trim`), so that the resident
  /// set counts live memory, not what earlier scenarios or the request arrays freed. Looked up at
  /// run time because the Glibc module does not export it; a no-op where it does not exist.
  static func trimHeap() {
    #if canImport(Glibc)
      typealias Trim = @convention(c) (Int) -> Int32
      guard let symbol = dlsym(nil, "malloc_trim") else { return }
      _ = unsafeBitCast(symbol, to: Trim.self)(0)
    #endif
  }

  /// Resident bytes of this process: the second field of /proc/self/statm, in pages.
  static func residentBytes() -> Int64 {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else {
      return 0
    }
    let fields = text.split(separator: " ")
    guard fields.count >= 2, let pages = Int64(fields[1]) else { return 0 }
    return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
  }

  /// The summed length and allocated bytes of the files in `directory`.
  static func directoryBytes(_ directory: String) throws -> (length: Int64, allocated: Int64) {
    var length: Int64 = 0
    var allocated: Int64 = 0
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
      var info = stat()
      guard stat(directory + "/" + name, &info) == 0 else { continue }
      length += Int64(info.st_size)
      allocated += Int64(info.st_blocks) * 512
    }
    return (length, allocated)
  }
}
