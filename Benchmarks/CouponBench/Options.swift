// The command line: hand-rolled parsing (the package has no dependencies) and `--help`.

import Foundation

/// A mistake on the command line: printed with the usage, exit status 2.
struct UsageError: Error {
  var message: String
}

/// What the command line asked for, with the defaults of a full run or a `--quick` one resolved.
struct BenchOptions: Sendable {
  /// Scenario names to run, in the order given; empty runs them all.
  var scenarios: [String] = []
  var quick = false
  var help = false
  var list = false
  var runsOverride: Int?
  var warmupsOverride: Int?
  var dataDirectory: String?
  var concurrencyOverride: [Int]?
  var openLoopRate = 50_000
  var openLoopSecondsOverride: Double?
  var recoveryClaimsOverride: Int?
  var large = false
  var memoryClaimsOverride: Int?
  var jsonPath: String?
  var svgPath: String?
  var keep = false
  var noSync = false

  /// Timed runs per case (the table reports their median and range).
  var runs: Int { runsOverride ?? (quick ? 1 : 5) }
  /// Untimed runs before the timed ones.
  var warmups: Int { warmupsOverride ?? 1 }
  /// The flash-sale concurrency sweep.
  var concurrency: [Int] { concurrencyOverride ?? [1, 16, 256, 10_000] }
  /// Roughly how long one timed run of a closed-loop case should take.
  var runSecondsTarget: Double { quick ? 0.15 : 1.0 }
  /// How long the open-loop scenario offers claims per run.
  var openLoopSeconds: Double { openLoopSecondsOverride ?? (quick ? 0.3 : 5) }
  /// Claims in the store the recovery scenario reopens.
  var recoveryClaims: Int {
    recoveryClaimsOverride ?? (large ? 10_000_000 : quick ? 20_000 : 1_000_000)
  }
  /// Claims the memory scenario measures.
  var memoryClaims: Int { memoryClaimsOverride ?? (quick ? 50_000 : 1_000_000) }

  static let usage = """
    usage: coupon-bench [SCENARIO...] [options]

    Measures CouponStore against the disk it runs on: first the raw fdatasync latency and append
    bandwidth of the data directory's disk, then each scenario, every result printed beside that
    limit. Always build in release: swift run -c release coupon-bench

    scenarios (all by default, in this order):
    \(ScenarioRegistry.all.map { "  \($0.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \($0.summary)" }.joined(separator: "\n"))

    options:
      --quick               smoke run: small sizes, one timed run; exits 1 if an invariant fails
                            (what CI runs)
      --data-dir DIR        where the stores and the baseline file go (default: $TMPDIR or /tmp);
                            put it on the disk you mean to measure
      --runs N              timed runs per case (default 5, quick 1)
      --warmup N            untimed runs before them (default 1)
      --concurrency LIST    flash-sale sweep, comma-separated (default 1,16,256,10000)
      --rate N              open-loop offered claims/s (default 50000)
      --duration S          open-loop seconds per run (default 5, quick 0.3)
      --recovery-claims N   claims in the recovery and snapshot-stall stores (default 1000000,
                            quick 20000)
      --large               recovery and snapshot-stall with 10,000,000 claims
      --memory-claims N     claims the memory scenario adds (default 1000000, quick 50000)
      --no-sync             acknowledge without fdatasync: measures the engine's CPU ceiling;
                            the results are NOT durable claims
      --json FILE           write every result as JSON
      --svg FILE            draw throughput vs concurrency and the latency distribution
      --keep                keep the stores in the data directory
      --list                list the scenarios and exit
      -h, --help            this text

    Exit status: 0 all invariants held, 1 an invariant failed, 2 usage error, 3 I/O or store error.
    """

  /// Parses the arguments after the program name.
  static func parse(_ arguments: [String]) throws(UsageError) -> BenchOptions {
    var options = BenchOptions()
    var index = 0
    while index < arguments.count {
      var argument = arguments[index]
      var inlineValue: String?
      if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
        inlineValue = String(argument[argument.index(after: equals)...])
        argument = String(argument[..<equals])
      }
      func value() throws(UsageError) -> String {
        if let inlineValue { return inlineValue }
        index += 1
        guard index < arguments.count else {
          throw UsageError(message: "\(argument) needs a value")
        }
        return arguments[index]
      }
      func count(_ minimum: Int = 1) throws(UsageError) -> Int {
        let text = try value()
        guard let number = Int(text.replacingOccurrences(of: "_", with: "")), number >= minimum
        else {
          throw UsageError(
            message: "\(argument) needs a whole number ≥ \(minimum), got \"\(text)\"")
        }
        return number
      }
      switch argument {
      case "-h", "--help": options.help = true
      case "--list": options.list = true
      case "--quick": options.quick = true
      case "--data-dir": options.dataDirectory = try value()
      case "--runs": options.runsOverride = try count()
      case "--warmup": options.warmupsOverride = try count(0)
      case "--concurrency":
        let text = try value()
        let levels = text.split(separator: ",", omittingEmptySubsequences: false).map {
          Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1_000_000 })
        else {
          throw UsageError(
            message: "--concurrency needs numbers 1–1000000 separated by commas, got \"\(text)\"")
        }
        options.concurrencyOverride = levels.map { $0! }
      case "--rate": options.openLoopRate = try count()
      case "--duration":
        let text = try value()
        guard let seconds = Double(text), seconds > 0, seconds <= 3600 else {
          throw UsageError(message: "--duration needs seconds in (0, 3600], got \"\(text)\"")
        }
        options.openLoopSecondsOverride = seconds
      case "--recovery-claims": options.recoveryClaimsOverride = try count()
      case "--large": options.large = true
      case "--memory-claims": options.memoryClaimsOverride = try count()
      case "--no-sync": options.noSync = true
      case "--json": options.jsonPath = try value()
      case "--svg": options.svgPath = try value()
      case "--keep": options.keep = true
      default:
        if argument.hasPrefix("-") { throw UsageError(message: "unknown option \(argument)") }
        guard ScenarioRegistry.named(argument) != nil else {
          throw UsageError(
            message: "unknown scenario \"\(argument)\"; one of: "
              + ScenarioRegistry.all.map(\.name).joined(separator: ", "))
        }
        if !options.scenarios.contains(argument) { options.scenarios.append(argument) }
      }
      index += 1
    }
    return options
  }
}
