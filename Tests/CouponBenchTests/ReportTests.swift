import Foundation
import Testing

@testable import CouponBench

#if canImport(FoundationXML)
  import FoundationXML
#endif

@Suite("Reports")
struct ReportTests {
  static func sampleReport() -> BenchReport {
    var sync = LatencySummary(sorted: [100_000, 200_000, 400_000])
    sync.count = 3
    let baseline = DiskBaseline(
      appendBytes: 64, syncLatency: sync, batchBytes: 4 << 20, bandwidthProbeBytes: 1 << 20,
      bandwidthBytesPerSecond: 100_000_000, synchronous: true)
    var flash = ScenarioReport(name: "flash-sale", summary: "one campaign")
    for tasks in [1, 16, 256] {
      var row = ResultRow(label: "\(tasks) tasks", parameter: Double(tasks), unit: "claims/s")
      row.throughput = Spread([Double(tasks) * 4_000, Double(tasks) * 4_500])
      row.setClosedLoopLimit(baseline, callers: tasks, logBytesPerOp: 50)
      row.setLatency(of: "claim", runs: [[150_000, 250_000, 900_000], [160_000, 260_000]])
      flash.rows.append(row)
    }
    flash.checks.append(Check("all claims issued", true))
    var sellOut = ScenarioReport(name: "sell-out", summary: "stock <1,000> & more")
    sellOut.checks.append(Check("exactly 1,000 issued", false, "999 issued"))
    let machine = MachineDescription(
      cores: 2, cpu: "Test CPU", memoryBytes: 1 << 30, os: "Test OS", kernel: "Linux 6",
      swift: "Swift 6.3", build: "release", dataDirectory: "/tmp/x", fileSystem: "ext4",
      device: "/dev/vda", deviceDetail: "virtio", loadAverage: [0.1, 0.2, 0.3])
    return BenchReport(
      date: "2026-01-01T00:00:00Z", arguments: [], quick: true, synchronous: true,
      machine: machine, baseline: baseline, scenarios: [flash, sellOut], backgroundCores: 0,
      failedChecks: 1)
  }

  @Test
  func tableShowsEachResultBesideTheDiskLimitAndTheFailedCheck() {
    let report = Self.sampleReport()
    let text = TextReport.scenario(report.scenarios[0], report.baseline)
    // 1 task: limit 1 × 1/200 µs = 5,000/s, and the median 4,250/s is 85% of it. Latency: the
    // runs' p50s are 250 and 160 µs, median 205 µs, over the raw fdatasync p50 of 200 µs: 1.02×;
    // p99s 900 and 260 µs, median 580 µs, over the raw p99 of 400 µs: 1.45×.
    #expect(text.contains("5000"))
    #expect(text.contains("85%"))
    #expect(text.contains("1.02×"))
    #expect(text.contains("1.45×"))
    let failed = TextReport.scenario(report.scenarios[1], report.baseline)
    #expect(failed.contains("FAIL exactly 1,000 issued: 999 issued"))
  }

  @Test
  func svgIsWellFormedXMLWithOnePointPerFlashSaleRow() throws {
    let svg = Chart.svg(Self.sampleReport())
    let parser = XMLParser(data: Data(svg.utf8))
    #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
    #expect(svg.components(separatedBy: "<circle").count - 1 == 3)
    #expect(svg.contains("fdatasync p99"))
  }

  @Test
  func jsonRoundTripsEveryScenario() throws {
    let path =
      NSTemporaryDirectory() + "coupon-bench-report-\(UInt32.random(in: 0...UInt32.max)).json"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try Self.sampleReport().writeJSON(to: path)
    let decoded = try JSONDecoder().decode(
      BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(decoded.scenarios.map(\.name) == ["flash-sale", "sell-out"])
    #expect(decoded.scenarios[0].rows[1].limit == 80_000)
    #expect(decoded.failedChecks == 1)
  }
}
