// coupon-bench: how anyone measures CouponStore, always beside the disk's own limit.
//
//   swift run -c release coupon-bench                  # every scenario
//   swift run -c release coupon-bench flash-sale --svg bench.svg --json bench.json
//   swift run -c release coupon-bench --quick          # CI smoke run: invariants only
//
// Order of a run: parse the options, describe the machine, measure the raw disk (fdatasync
// latency, append bandwidth) on the data directory's disk, run the scenarios (each prints its
// table as soon as it finishes), then write JSON and SVG if asked. Exit status 1 if any invariant
// check failed.

import CouponStore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

enum CouponBench {
  static let debugBanner = """
    ################################################################################
    #  DEBUG BUILD. These numbers say nothing about CouponStore's speed: an        #
    #  unoptimised build is 10-100x slower. Measure with                            #
    #      swift run -c release coupon-bench                                        #
    ################################################################################
    """

  static func main() async -> Int32 {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let options: BenchOptions
    do {
      options = try BenchOptions.parse(arguments)
    } catch {
      writeStandardError("coupon-bench: \(error.message)\n\n\(BenchOptions.usage)\n")
      return 2
    }
    if options.help {
      emit(BenchOptions.usage)
      return 0
    }
    if options.list {
      for scenario in ScenarioRegistry.all { emit("\(scenario.name)\t\(scenario.summary)") }
      return 0
    }
    #if DEBUG
      emit(debugBanner)
    #endif
    do {
      let failed = try await run(options, arguments: arguments)
      #if DEBUG
        emit("\n" + debugBanner)
      #endif
      return failed > 0 ? 1 : 0
    } catch {
      writeStandardError("coupon-bench: \(error)\n")
      return 3
    }
  }

  /// Runs everything; returns the number of failed checks.
  static func run(_ options: BenchOptions, arguments: [String]) async throws -> Int {
    let parent = options.dataDirectory ?? NSTemporaryDirectory()
    let root =
      (parent.hasSuffix("/") ? String(parent.dropLast()) : parent)
      + "/coupon-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(
      atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    defer { if !options.keep { try? FileManager.default.removeItem(atPath: root) } }

    let progress = Progress()
    let runStarted = CPUSample.now()
    let machine = MachineDescription.describe(dataDirectory: root)
    let baseline = try DiskBaseline.measure(
      directory: root, quick: options.quick, synchronous: !options.noSync, progress: progress)
    progress.clear()
    emit(TextReport.header(machine, baseline, quick: options.quick))

    let selected =
      options.scenarios.isEmpty
      ? ScenarioRegistry.all : options.scenarios.compactMap(ScenarioRegistry.named)
    var reports: [ScenarioReport] = []
    for (index, scenario) in selected.enumerated() {
      // The first scenario follows the full baseline at once; every later one gets the fdatasync
      // latency re-measured just before it, and its limits and ratios use that.
      let scenarioBaseline =
        index == 0
        ? baseline
        : try baseline.remeasuringLatency(directory: root, quick: options.quick, progress: progress)
      let bench = Bench(
        options: options, baseline: scenarioBaseline, root: root, progress: progress)
      let before = CPUSample.now()
      var report = try await scenario.run(bench)
      let after = CPUSample.now()
      report.baseline = scenarioBaseline
      report.seconds = Clock.seconds(from: before.wallNanos, to: after.wallNanos)
      // Below a second the sample is too short to say anything about other processes.
      report.backgroundCores = report.seconds >= 1 ? before.backgroundCores(until: after) : nil
      progress.clear()
      emit(TextReport.scenario(report, scenarioBaseline), terminator: "")
      reports.append(report)
    }

    let background = runStarted.backgroundCores(until: CPUSample.now())
    let failed = reports.reduce(0) { $0 + $1.failedChecks.count }
    let report = BenchReport(
      date: ISO8601DateFormatter().string(from: Date()), arguments: arguments,
      quick: options.quick, synchronous: !options.noSync, machine: machine, baseline: baseline,
      scenarios: reports, backgroundCores: background, failedChecks: failed)
    emit("")
    if let background {
      let loaded = background >= 0.2
      emit(
        String(
          format: "background load: other processes used %.2f of %d cores during the run",
          background, machine.cores)
          + (loaded ? " — the machine was LOADED; treat these numbers as pessimistic" : ""))
    }
    if let path = options.jsonPath {
      try report.writeJSON(to: path)
      emit("wrote \(path)")
    }
    if let path = options.svgPath {
      try Chart.svg(report).write(toFile: path, atomically: true, encoding: .utf8)
      emit("wrote \(path)")
    }
    let checks = reports.reduce(0) { $0 + $1.checks.count }
    emit(
      failed == 0
        ? "all \(checks) invariant checks held"
        : "\(failed) of \(checks) invariant checks FAILED")
    return failed
  }
}

exit(await CouponBench.main())
