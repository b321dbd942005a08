// Time, percentiles and the spread of repeated runs.
//
// Latencies are kept as raw `UInt64` nanoseconds of `CLOCK_MONOTONIC` and only summarised after a
// run, never binned while it runs: a histogram update on the hot path would cost more than the
// clock read, and sorting a few hundred thousand integers afterwards costs nothing that is timed.

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The monotonic clock every measurement uses.
enum Clock {
  /// Nanoseconds of `CLOCK_MONOTONIC` (a vDSO call, about 20 ns, no system call).
  static func nanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
  }

  /// Seconds between two readings.
  static func seconds(from start: UInt64, to end: UInt64) -> Double {
    Double(end &- start) / 1e9
  }
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values; 0 for no values.
func nearestRank(_ sorted: [UInt64], _ p: Double) -> UInt64 {
  guard !sorted.isEmpty else { return 0 }
  let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
  return sorted[min(max(rank - 1, 0), sorted.count - 1)]
}

/// The latency percentiles of one run (or of several runs, see ``LatencySummary/medianOf(_:)``),
/// in nanoseconds.
struct LatencySummary: Codable, Sendable, Hashable {
  var count: Int
  var p50: Double
  var p90: Double
  var p99: Double
  var p999: Double
  var max: Double
  var mean: Double

  /// Summarises ascending latencies.
  init(sorted: [UInt64]) {
    count = sorted.count
    p50 = Double(nearestRank(sorted, 50))
    p90 = Double(nearestRank(sorted, 90))
    p99 = Double(nearestRank(sorted, 99))
    p999 = Double(nearestRank(sorted, 99.9))
    max = Double(sorted.last ?? 0)
    mean = sorted.isEmpty ? 0 : sorted.reduce(0.0) { $0 + Double($1) } / Double(sorted.count)
  }

  private init(
    count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double,
    mean: Double
  ) {
    self.count = count
    self.p50 = p50
    self.p90 = p90
    self.p99 = p99
    self.p999 = p999
    self.max = max
    self.mean = mean
  }

  /// Each percentile's median over repeated runs (the table's latency columns).
  static func medianOf(_ runs: [LatencySummary]) -> LatencySummary {
    precondition(!runs.isEmpty, "median of no runs")
    func median(_ field: (LatencySummary) -> Double) -> Double { Spread(runs.map(field)).median }
    return LatencySummary(
      count: runs.reduce(0) { $0 + $1.count }, p50: median(\.p50), p90: median(\.p90),
      p99: median(\.p99), p999: median(\.p999), max: median(\.max), mean: median(\.mean))
  }
}

/// One point of a latency distribution: `percentile` (0–100) and its latency in nanoseconds.
struct PercentilePoint: Codable, Sendable, Hashable {
  var percentile: Double
  var nanos: Double

  /// The percentiles charted and written to JSON.
  static let charted: [Double] = [
    0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100,
  ]

  /// The charted points of ascending latencies.
  static func profile(_ sorted: [UInt64]) -> [PercentilePoint] {
    guard !sorted.isEmpty else { return [] }
    return charted.map { p in
      PercentilePoint(
        percentile: p, nanos: Double(p == 0 ? sorted[0] : nearestRank(sorted, p)))
    }
  }
}

/// The median and range of a quantity measured in repeated runs.
struct Spread: Codable, Sendable, Hashable {
  var median: Double
  var min: Double
  var max: Double
  /// Every run's value, in run order.
  var values: [Double]

  /// The spread of `values` (at least one).
  init(_ values: [Double]) {
    precondition(!values.isEmpty, "spread of no values")
    let sorted = values.sorted()
    let middle = sorted.count / 2
    median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    min = sorted[0]
    max = sorted[sorted.count - 1]
    self.values = values
  }
}

/// `numerator / denominator`, or `nil` when the denominator is not a positive number.
func ratio(_ numerator: Double, _ denominator: Double?) -> Double? {
  guard let denominator, denominator > 0, denominator.isFinite, numerator.isFinite else {
    return nil
  }
  return numerator / denominator
}
