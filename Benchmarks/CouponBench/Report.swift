// The results: their model, the table for people, and the JSON for tools.
//
// Every throughput sits beside the disk's limit for the same case (``DiskBaseline``) and every
// latency beside the raw fdatasync latency, so a number is never read without the physics next
// to it.

import Foundation

/// A named check of an invariant (exactly N issued, one winner…). A failed check makes the run
/// exit with status 1.
struct Check: Codable, Sendable {
  var name: String
  var passed: Bool
  var detail: String?

  init(_ name: String, _ passed: Bool, _ detail: String? = nil) {
    self.name = name
    self.passed = passed
    self.detail = passed ? nil : detail
  }

  /// A check that held if no run reported a failure.
  init(_ name: String, failures: [String]) {
    self.init(name, failures.isEmpty, failures.joined(separator: "; "))
  }
}

/// A further measured quantity of a row, with an optional ratio to a limit.
struct Metric: Codable, Sendable {
  enum Unit: String, Codable, Sendable {
    case nanos, perSecond, bytes, bytesPerSecond, count
  }

  var name: String
  var value: Spread
  var unit: Unit
  /// What the ratio compares with ("fdatasync p50").
  var relativeTo: String?
  /// `value.median` divided by that limit.
  var ratio: Double?
}

/// One case of a scenario (one concurrency level, one batch size…).
struct ResultRow: Codable, Sendable {
  var label: String
  /// The case's parameter, for charts (the concurrency of a flash-sale row).
  var parameter: Double?
  /// What ``throughput`` counts per second.
  var unit: String
  var throughput: Spread?
  /// The disk's limit for this case in the same unit, and how it was derived.
  var limit: Double?
  var limitBasis: String?
  /// What one latency sample is ("claim", "batch of 1,000 claims").
  var latencyOf: String?
  /// Median over the timed runs of each run's percentiles.
  var latency: LatencySummary?
  /// The distribution of every timed run's samples together.
  var profile: [PercentilePoint]?
  /// Log bytes written per operation (frame included), measured from the store's statistics.
  var logBytesPerOp: Double?
  /// The fdatasync latency this row's ratios use, when it was measured just before the row
  /// rather than before the scenario.
  var syncLatency: LatencySummary?
  var metrics: [Metric] = []

  /// The throughput's median as a fraction of the limit.
  var ofLimit: Double? { throughput.flatMap { ratio($0.median, limit) } }

  init(label: String, parameter: Double? = nil, unit: String) {
    self.label = label
    self.parameter = parameter
    self.unit = unit
  }

  /// Fills the latency columns from the timed runs' sorted samples.
  mutating func setLatency(of what: String, runs sortedRuns: [[UInt64]]) {
    guard !sortedRuns.isEmpty, sortedRuns.allSatisfy({ !$0.isEmpty }) else { return }
    latencyOf = what
    latency = LatencySummary.medianOf(sortedRuns.map(LatencySummary.init(sorted:)))
    profile = PercentilePoint.profile(
      sortedRuns.count == 1 ? sortedRuns[0] : sortedRuns.flatMap { $0 }.sorted())
  }
}

/// The results of one scenario.
struct ScenarioReport: Codable, Sendable {
  var name: String
  var summary: String
  /// Why it did not run, if it did not.
  var skipped: String?
  var rows: [ResultRow] = []
  var checks: [Check] = []
  var notes: [String] = []
  /// Cores other processes used while it ran.
  var backgroundCores: Double?
  /// The disk limits this scenario's limits and ratios use (fdatasync latency measured just
  /// before it ran).
  var baseline: DiskBaseline?
  var seconds: Double = 0

  var failedChecks: [Check] { checks.filter { !$0.passed } }
}

/// Everything one run measured: what `--json` writes.
struct BenchReport: Codable, Sendable {
  var tool = "coupon-bench"
  var formatVersion = 1
  var date: String
  var arguments: [String]
  var quick: Bool
  var synchronous: Bool
  var machine: MachineDescription
  var baseline: DiskBaseline
  var scenarios: [ScenarioReport]
  /// Cores other processes used during the whole run.
  var backgroundCores: Double?
  var failedChecks: Int

  /// Writes the report as pretty-printed JSON.
  func writeJSON(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try encoder.encode(self).write(to: URL(fileURLWithPath: path))
  }
}

/// The text output.
enum TextReport {
  /// The header: machine, disk and its measured limits.
  static func header(_ machine: MachineDescription, _ baseline: DiskBaseline, quick: Bool)
    -> String
  {
    let sync = baseline.syncLatency
    var lines = [
      "coupon-bench — CouponStore measured against its disk"
        + (quick ? " (--quick smoke run)" : ""),
      "machine   \(machine.cores) cores, \(machine.cpu), \(formatBytes(Double(machine.memoryBytes))) RAM",
      "os        \(machine.os), \(machine.kernel)",
      "build     \(machine.swift), \(machine.build)",
      "disk      \(machine.dataDirectory): \(machine.fileSystem) on \(machine.device)"
        + (machine.deviceDetail.isEmpty ? "" : " (\(machine.deviceDetail))"),
      "load      "
        + machine.loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " ")
        + " (1/5/15 min, at start)",
      "",
      "raw disk  \(baseline.appendBytes)-byte append + fdatasync: p50 \(formatNanos(sync.p50)), "
        + "p99 \(formatNanos(sync.p99)), p99.9 \(formatNanos(sync.p999)) "
        + "(\(sync.count) samples) → \(formatRate(baseline.syncsPerSecond)) syncs/s",
      "          \(formatBytes(Double(baseline.batchBytes))) appends + fdatasync: "
        + "\(formatBytes(baseline.bandwidthBytesPerSecond))/s",
      "limit     closed loop of C callers: min(C × \(formatRate(baseline.syncsPerSecond))/s, "
        + "bandwidth ÷ log bytes per claim)",
      "          (each later scenario re-measures the fdatasync latency just before it runs, and "
        + "uses that)",
    ]
    if !baseline.synchronous {
      lines.append(
        "--no-sync: the store acknowledges without fdatasync; no result below is a durable claim, "
          + "and no disk limit applies")
    }
    if machine.isMemoryFileSystem {
      lines.append(
        "WARNING: \(machine.dataDirectory) is on \(machine.fileSystem): fdatasync writes to no "
          + "disk here. Pass --data-dir on the disk you mean to measure.")
    }
    return lines.joined(separator: "\n")
  }

  /// One scenario's table, extra metrics, notes and checks.
  static func scenario(_ report: ScenarioReport, _ baseline: DiskBaseline) -> String {
    var out = "\n== \(report.name) — \(report.summary)"
    out += String(format: "  [%.1f s", report.seconds)
    if let background = report.backgroundCores, background >= 0.2 {
      out += String(format: ", LOADED: others used %.1f cores", background)
    }
    out += "]\n"
    if baseline.synchronous, report.skipped == nil {
      out +=
        "   fdatasync just before: p50 \(formatNanos(baseline.syncLatency.p50)), "
        + "p99 \(formatNanos(baseline.syncLatency.p99))\n"
    }
    if let skipped = report.skipped { return out + "   skipped: \(skipped)\n" }
    var table: [[String]] = [
      [
        "case", "median", "min–max", "disk limit", "of limit", "p50", "p99", "p99.9",
        "p50÷sync50", "p99÷sync99",
      ]
    ]
    for row in report.rows {
      var cells = [row.label]
      if let throughput = row.throughput {
        cells += [
          formatRate(throughput.median) + " " + row.unit,
          formatRate(throughput.min) + "–" + formatRate(throughput.max),
        ]
      } else {
        cells += ["", ""]
      }
      cells.append(row.limit.map { formatRate($0) } ?? "—")
      cells.append(row.ofLimit.map { String(format: "%.0f%%", $0 * 100) } ?? "—")
      let sync = row.syncLatency ?? baseline.syncLatency
      let syncP50 = baseline.synchronous ? sync.p50 : nil
      let syncP99 = baseline.synchronous ? sync.p99 : nil
      if let latency = row.latency {
        cells += [formatNanos(latency.p50), formatNanos(latency.p99), formatNanos(latency.p999)]
        cells.append(ratio(latency.p50, syncP50).map(formatRatio) ?? "—")
        cells.append(ratio(latency.p99, syncP99).map(formatRatio) ?? "—")
      } else {
        cells += ["", "", "", "", ""]
      }
      table.append(cells)
    }
    if report.rows.contains(where: { $0.throughput != nil || $0.latency != nil }) {
      out += renderTable(table, rightAligned: Set(1..<10))
    }
    for row in report.rows {
      var details: [String] = []
      if let sync = row.syncLatency, baseline.synchronous {
        details.append(
          "fdatasync just before: p50 \(formatNanos(sync.p50)), p99 \(formatNanos(sync.p99))")
      }
      if let basis = row.limitBasis { details.append("limit: \(basis)") }
      if let what = row.latencyOf { details.append("latency per \(what)") }
      if let bytes = row.logBytesPerOp { details.append(String(format: "%.1f log B/claim", bytes)) }
      if !details.isEmpty { out += "   \(row.label): " + details.joined(separator: "; ") + "\n" }
      for metric in row.metrics {
        out += "   \(row.label): \(metric.name) \(format(metric.value.median, metric.unit))"
        if metric.value.values.count > 1 {
          out +=
            " (\(format(metric.value.min, metric.unit))–\(format(metric.value.max, metric.unit)))"
        }
        if let ratio = metric.ratio, let to = metric.relativeTo {
          out += " = \(formatRatio(ratio)) \(to)"
        }
        out += "\n"
      }
    }
    for note in report.notes { out += "   note: \(note)\n" }
    for check in report.checks {
      out += "   \(check.passed ? "ok  " : "FAIL") \(check.name)"
      if let detail = check.detail { out += ": \(detail)" }
      out += "\n"
    }
    return out
  }

  /// Columns padded to their widest cell.
  static func renderTable(_ rows: [[String]], rightAligned: Set<Int>) -> String {
    let columns = rows.map(\.count).max() ?? 0
    var widths = [Int](repeating: 0, count: columns)
    for row in rows {
      for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    var out = ""
    for row in rows {
      var line = "  "
      for (index, cell) in row.enumerated() {
        let pad = String(repeating: " ", count: widths[index] - cell.count)
        line += " " + (rightAligned.contains(index) ? pad + cell : cell + pad)
      }
      while line.hasSuffix(" ") { line.removeLast() }
      out += line + "\n"
    }
    return out
  }

  static func format(_ value: Double, _ unit: Metric.Unit) -> String {
    switch unit {
    case .nanos: formatNanos(value)
    case .perSecond: formatRate(value) + "/s"
    case .bytes: formatBytes(value)
    case .bytesPerSecond: formatBytes(value) + "/s"
    case .count: formatRate(value)
    }
  }
}

/// `812`, `51.2k`, `1.52M`.
func formatRate(_ value: Double) -> String {
  let magnitude = abs(value)
  if magnitude >= 1e9 { return String(format: "%.2fG", value / 1e9) }
  if magnitude >= 1e6 { return String(format: "%.2fM", value / 1e6) }
  if magnitude >= 1e4 { return String(format: "%.1fk", value / 1e3) }
  if magnitude >= 100 { return String(format: "%.0f", value) }
  return String(format: "%.3g", value)
}

/// `850 ns`, `81 µs`, `1.21 ms`, `3.40 s`.
func formatNanos(_ nanos: Double) -> String {
  if nanos >= 1e9 { return String(format: "%.2f s", nanos / 1e9) }
  if nanos >= 1e7 { return String(format: "%.1f ms", nanos / 1e6) }
  if nanos >= 1e6 { return String(format: "%.2f ms", nanos / 1e6) }
  if nanos >= 1e4 { return String(format: "%.0f µs", nanos / 1e3) }
  if nanos >= 1e3 { return String(format: "%.1f µs", nanos / 1e3) }
  return String(format: "%.0f ns", nanos)
}

/// `96 B`, `1.5 KiB`, `12.0 MiB`.
func formatBytes(_ bytes: Double) -> String {
  let kibi = 1024.0
  if bytes >= kibi * kibi * kibi { return String(format: "%.1f GiB", bytes / (kibi * kibi * kibi)) }
  if bytes >= kibi * kibi { return String(format: "%.1f MiB", bytes / (kibi * kibi)) }
  if bytes >= kibi { return String(format: "%.1f KiB", bytes / kibi) }
  return String(format: "%.0f B", bytes)
}

/// `0.93×`, `12×`.
func formatRatio(_ value: Double) -> String {
  value >= 10 ? String(format: "%.0f×", value) : String(format: "%.2f×", value)
}
