// The disk's own limit, measured first in every run on the data directory's disk.
//
// Two numbers bound every durable result:
// - the latency of a small append followed by `fdatasync`: no acknowledged claim can be faster
//   than the one sync that makes it durable, and a closed loop of C callers can complete at most
//   C claims per sync;
// - the bandwidth of large appends, each synced: a log of b bytes per claim cannot take more than
//   bandwidth / b claims per second.
// The probe writes the way the store's log does: appends that extend the file (so the sync also
// commits the new size), straight through Glibc (`open`, `pwrite`, `fdatasync`), no buffering.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An environment error of the runner itself (the disk probe, the data directory).
struct BenchError: Error, CustomStringConvertible {
  var description: String

  /// A failed system call, with its errno.
  static func system(_ call: String, _ path: String, _ code: Int32 = errno) -> BenchError {
    BenchError(description: "\(call) \(path): \(String(cString: strerror(code))) (errno \(code))")
  }
}

/// The disk limits measured at the start of a run.
struct DiskBaseline: Codable, Sendable {
  /// Bytes per append of the latency probe.
  var appendBytes: Int
  /// Latency of one `pwrite` of ``appendBytes`` at the end of the file plus `fdatasync`.
  var syncLatency: LatencySummary
  /// Bytes per append of the bandwidth probe (the store's default batch cap).
  var batchBytes: Int
  /// Bytes written by the bandwidth probe.
  var bandwidthProbeBytes: Int
  /// Bytes per second of large appends, each followed by `fdatasync`.
  var bandwidthBytesPerSecond: Double
  /// Whether the store runs with `fdatasync` (false under `--no-sync`: no sync-derived limit
  /// applies then).
  var synchronous: Bool

  /// Syncs per second at the median latency: the rate at which group commits can follow each
  /// other.
  var syncsPerSecond: Double { 1e9 / syncLatency.p50 }

  /// The most durable operations per second a closed loop of `callers` can complete when each
  /// operation carries `opsPerCall` records of `bytesPerOp` log bytes: at most one sync per
  /// round trip for each caller, and no more bytes than the disk's bandwidth. `nil` without
  /// syncing or without a size.
  func closedLoopLimit(callers: Int, opsPerCall: Int = 1, bytesPerOp: Double?) -> Double? {
    guard synchronous else { return nil }
    let syncBound = Double(callers * opsPerCall) * syncsPerSecond
    guard let bytesPerOp, bytesPerOp > 0 else { return syncBound }
    return min(syncBound, bandwidthBytesPerSecond / bytesPerOp)
  }

  /// Measures the fdatasync latency again, briefly, keeping `self`'s bandwidth: each scenario
  /// runs against the disk as it is just before it, which on a shared machine is not always the
  /// disk the run started on.
  func remeasuringLatency(directory: String, quick: Bool, progress: Progress) throws(BenchError)
    -> DiskBaseline
  {
    progress.update("fdatasync latency, again")
    let probe = try SyncProbe(directory: directory, appendBytes: appendBytes)
    var again = self
    again.syncLatency = LatencySummary(
      sorted: try probe.samples(
        secondsMax: quick ? 0.1 : 0.5, samplesMin: quick ? 30 : 100,
        samplesMax: quick ? 200 : 2_000
      ).sorted())
    return again
  }

  /// Measures the disk of `directory` (which must exist). `quick` shortens both probes.
  static func measure(directory: String, quick: Bool, synchronous: Bool, progress: Progress)
    throws(BenchError) -> DiskBaseline
  {
    let probe = try SyncProbe(directory: directory, appendBytes: 64)
    progress.update("baseline: fdatasync latency")
    let latencies = try probe.samples(
      secondsMax: quick ? 0.25 : 2, samplesMin: quick ? 50 : 300, samplesMax: quick ? 500 : 5_000)
    progress.update("baseline: append bandwidth")
    let batchBytes = 4 << 20
    let (probeBytes, seconds) = try probe.bandwidth(
      batchBytes: batchBytes, bytesMax: quick ? 16 << 20 : 128 << 20, secondsMax: quick ? 0.5 : 3)
    return DiskBaseline(
      appendBytes: probe.appendBytes, syncLatency: LatencySummary(sorted: latencies.sorted()),
      batchBytes: batchBytes, bandwidthProbeBytes: probeBytes,
      bandwidthBytesPerSecond: Double(probeBytes) / seconds, synchronous: synchronous)
  }
}

/// A file in the data directory taking appends, each followed by `fdatasync`: the raw cost of
/// making a write durable on that disk, with nothing of CouponStore in the way. Removed when
/// released. Used from one task at a time.
final class SyncProbe {
  let path: String
  let appendBytes: Int
  private let fd: Int32
  private var offset: off_t = 0
  private let record: [UInt8]
  private var unmeasured = 10

  /// Creates (or truncates) `directory/name`.
  init(directory: String, name: String = "baseline.probe", appendBytes: Int) throws(BenchError) {
    path = directory + "/" + name
    self.appendBytes = appendBytes
    record = [UInt8](repeating: 0xA5, count: appendBytes)
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw .system("open", path) }
  }

  deinit {
    close(fd)
    unlink(path)
  }

  /// One small append at the end of the file and its `fdatasync`; returns the nanoseconds of
  /// the pair. The first few calls after opening also allocate the file's first blocks, so
  /// ``samples(secondsMax:samplesMin:samplesMax:)`` drops them.
  func sample() throws(BenchError) -> UInt64 {
    let started = Clock.nanos()
    let written = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
    guard written == appendBytes else { throw .system("pwrite", path) }
    guard fdatasync(fd) == 0 else { throw .system("fdatasync", path) }
    offset += off_t(appendBytes)
    return Clock.nanos() - started
  }

  /// Samples for about `secondsMax` (at least `samplesMin`, at most `samplesMax`), after the
  /// first ten of the file's life, which are not kept.
  func samples(secondsMax: Double, samplesMin: Int, samplesMax: Int) throws(BenchError)
    -> [UInt64]
  {
    while unmeasured > 0 {
      _ = try sample()
      unmeasured -= 1
    }
    var samples: [UInt64] = []
    samples.reserveCapacity(samplesMax)
    let deadline = Clock.nanos() + UInt64(secondsMax * 1e9)
    while samples.count < samplesMax {
      samples.append(try sample())
      if samples.count >= samplesMin, Clock.nanos() >= deadline { break }
    }
    return samples
  }

  /// Appends of `batchBytes`, each followed by `fdatasync`, until `bytesMax` or `secondsMax`;
  /// returns the bytes written and the seconds taken.
  func bandwidth(batchBytes: Int, bytesMax: Int, secondsMax: Double) throws(BenchError)
    -> (bytes: Int, seconds: Double)
  {
    // Not zeros, so that no layer between here and the platter can shortcut the write.
    var generator = SplitMix64(seed: 0x5EED)
    let batch = (0..<batchBytes / 8).flatMap { _ in
      withUnsafeBytes(of: generator.next()) { Array($0) }
    }
    var written = 0
    let started = Clock.nanos()
    let deadline = started + UInt64(secondsMax * 1e9)
    repeat {
      let count = batch.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset) }
      guard count == batchBytes else { throw .system("pwrite", path) }
      guard fdatasync(fd) == 0 else { throw .system("fdatasync", path) }
      offset += off_t(batchBytes)
      written += batchBytes
    } while written < bytesMax && Clock.nanos() < deadline
    return (written, Clock.seconds(from: started, to: Clock.nanos()))
  }
}

/// A small, fast, deterministic generator for the runner's own choices (which campaign a spread
/// claim goes to, the probe's filler bytes). Not for anything secret.
struct SplitMix64 {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
