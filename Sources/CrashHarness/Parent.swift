// The parent: start a child, kill it with SIGKILL, reopen the store, verify, repeat.
//
// Where a kill lands (drawn from the seed, one per kill):
// - during open: a few milliseconds after the child starts, while it recovers from the last kill;
// - while claiming: after the child reported READY, at a random delay up to --max-delay-ms;
// - at a segment roll: the parent watches the directory and kills the moment a new segment file
//   appears, i.e. while the child syncs the full segment, writes the new header, syncs it and
//   syncs the directory;
// - during a snapshot: the same, for a new `snapshot-*` file (the temporary file appears first,
//   so the kill lands while the snapshot is written, synced, renamed and the directory synced);
//   used once a child has reported that it takes snapshots (Child.swift: `snapshot()` now and
//   then, and automatic snapshots every 4 MiB of log).
//
// After every kill, the parent verifies, with the store's public API only:
// - `CouponStore.inspect` (read-only replay) finds no invariant violation;
// - the store opens (cutting a torn tail at most);
// - every campaign the child reported as created exists with its stock and per-user limit;
// - every claim the child reported as acknowledged is there: same code, campaign and user;
// - codes are unique, issued ≤ stock for every campaign, and no user holds more than the limit.
// The store then carries on under the next child, so each kill also tests recovery from the
// state the previous recoveries left. Every `--rotate` kills (or once the log passes 16 MiB)
// the directory is deleted and a fresh store starts, to bound replay time and disk use.
//
// A seed fixes the kill moments' kinds and delays and each child's workload; it cannot fix where
// the scheduler is when SIGKILL arrives, so a failure is reproduced by rerunning the same seed,
// possibly a few times.

import CouponSimulation
import CouponStore
import Foundation
import Glibc
import Synchronization

enum Parent {
  struct Settings {
    var kills = 100
    var seed: UInt64?
    var directory: String?
    var keep = false
    var maxDelayMillis = 300
    var rotateEvery = 50
    var verbose = false
  }

  enum KillMoment: String, CaseIterable {
    case duringOpen = "during open"
    case whileClaiming = "while claiming"
    case atSegmentRoll = "at a segment roll"
    case duringSnapshot = "during a snapshot"
  }

  /// Everything the children reported as acknowledged since the directory was (re)created.
  struct Ledger {
    var campaigns: [String: (stock: Int, perUserLimit: Int)] = [:]
    var coupons: [String: (campaign: String, user: String?)] = [:]
  }

  struct Totals {
    var kills = 0
    var byMoment: [KillMoment: Int] = [:]
    var claimsVerified = 0
    var campaignsVerified = 0
    var tornTailsCut = 0
    var epochs = 1
  }

  static let rotateBytes: Int64 = 16 << 20

  static func parse(_ arguments: [String]) throws -> Settings {
    var settings = Settings()
    var index = 0
    func value() throws -> String {
      index += 1
      guard index < arguments.count else {
        throw UsageError("\(arguments[index - 1]) needs a value")
      }
      return arguments[index]
    }
    func number() throws -> Int {
      let text = try value()
      guard let number = Int(text), number > 0 else {
        throw UsageError("expected a positive number, got \"\(text)\"")
      }
      return number
    }
    while index < arguments.count {
      switch arguments[index] {
      case "--kills": settings.kills = try number()
      case "--seed":
        let text = try value()
        guard let seed = UInt64(text) else { throw UsageError("--seed needs a number") }
        settings.seed = seed
      case "--dir": settings.directory = try value()
      case "--keep": settings.keep = true
      case "--max-delay-ms": settings.maxDelayMillis = try number()
      case "--rotate": settings.rotateEvery = try number()
      case "--verbose": settings.verbose = true
      case "--help", "-h":
        say(usage)
        exit(0)
      case let other: throw UsageError("unknown option \"\(other)\"")
      }
      index += 1
    }
    return settings
  }

  /// Runs the kill loop; returns the exit status (0: no problem found).
  static func run(_ arguments: [String]) async throws -> Int32 {
    let settings = try parse(arguments)
    var system = SystemRandomNumberGenerator()
    let seed = settings.seed ?? system.next() % 1_000_000_000
    var random = SimulationRandom(seed: seed)
    let directory =
      settings.directory ?? NSTemporaryDirectory() + "crash-harness-\(seed)-\(getpid())"
    if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory),
      !existing.isEmpty
    {
      throw UsageError(
        "\(directory) is not empty; the harness deletes its directory between "
          + "rounds, so give it a new or empty one")
    }
    let executable = try selfExecutable()
    say(
      "crash-harness: \(settings.kills) kills, seed \(seed), store \(directory)\(isDebugBuild ? " (DEBUG BUILD: slow; use -c release for the soak)" : "")"
    )
    let started = ContinuousClock.now
    var totals = Totals()
    var ledger = Ledger()
    var snapshots = false
    for kill in 1...settings.kills {
      if kill > 1 && (kill - 1) % settings.rotateEvery == 0 || logBytes(directory) > rotateBytes {
        try? FileManager.default.removeItem(atPath: directory)
        ledger = Ledger()
        totals.epochs += 1
      }
      var moments: [KillMoment] = [.duringOpen, .whileClaiming, .whileClaiming, .atSegmentRoll]
      if snapshots { moments.append(.duringSnapshot) }
      let moment = random.element(of: moments)!
      let child = try ChildProcess(
        executable: executable,
        arguments: [
          "child", "--dir", directory, "--seed", "\(random.next())", "--tag",
          "e\(totals.epochs)k\(kill)",
        ])
      let delay = random.int(in: 1...settings.maxDelayMillis)
      switch moment {
      case .duringOpen:
        usleep(useconds_t(random.int(in: 0...15) * 1_000))
      case .whileClaiming:
        guard child.waitForReady() else {
          return fail(kill, seed, ["the child never became ready"], directory)
        }
        usleep(useconds_t(delay * 1_000))
      case .atSegmentRoll, .duringSnapshot:
        guard child.waitForReady() else {
          return fail(kill, seed, ["the child never became ready"], directory)
        }
        let prefix = moment == .atSegmentRoll ? "log-" : "snapshot-"
        waitForNewFile(in: directory, prefix: prefix, timeoutMillis: 5_000)
      }
      child.kill()
      let report = child.finish()
      if !report.killed {
        return fail(
          kill, seed,
          ["the child exited by itself (status \(report.status)) instead of being killed"],
          directory)
      }
      if let ready = report.lines.first(where: { $0.hasPrefix("READY ") }),
        ready.split(separator: " ").last == "1"
      {
        snapshots = true
      }
      let acknowledged = record(report.lines, into: &ledger)
      var problems: [String] = []
      let tornTail = await verify(directory, ledger, problems: &problems)
      totals.kills += 1
      totals.byMoment[moment, default: 0] += 1
      if tornTail > 0 { totals.tornTailsCut += 1 }
      totals.claimsVerified += acknowledged.claims
      totals.campaignsVerified += acknowledged.campaigns
      if settings.verbose || !problems.isEmpty {
        say(
          "kill \(kill) (\(moment.rawValue)): +\(acknowledged.claims) claims, "
            + "+\(acknowledged.campaigns) campaigns acknowledged, torn tail \(tornTail) bytes")
      }
      if !problems.isEmpty { return fail(kill, seed, problems, directory) }
      if !settings.verbose && (kill % max(1, settings.kills / 10) == 0) {
        say(
          "  \(kill)/\(settings.kills) kills, \(totals.claimsVerified) acknowledged claims verified"
        )
      }
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    let moments = KillMoment.allCases.compactMap { moment in
      totals.byMoment[moment].map { "\($0) \(moment.rawValue)" }
    }.joined(separator: ", ")
    say(
      "crash-harness: \(totals.kills) kills (\(moments)), 0 problems; "
        + "\(totals.claimsVerified) acknowledged claims and \(totals.campaignsVerified) campaigns "
        + "verified over \(totals.epochs) store(s); \(totals.tornTailsCut) torn tails cut; "
        + String(format: "%.0f s", seconds))
    if !settings.keep { try? FileManager.default.removeItem(atPath: directory) }
    return 0
  }

  static func fail(_ kill: Int, _ seed: UInt64, _ problems: [String], _ directory: String)
    -> Int32
  {
    say("FAILED at kill \(kill):")
    for problem in problems.prefix(20) { say("  ✗ \(problem)") }
    if problems.count > 20 { say("  … and \(problems.count - 20) more") }
    say("store kept for inspection: \(directory)  (couponstore verify \(directory))")
    say("reproduce: swift run -c release crash-harness --kills \(kill) --seed \(seed)")
    return 1
  }

  /// Adds the child's complete lines to the ledger; returns how many acknowledgements they held.
  static func record(_ lines: [Substring], into ledger: inout Ledger) -> (
    claims: Int, campaigns: Int
  ) {
    var claims = 0
    var campaigns = 0
    for line in lines {
      let fields = line.split(separator: " ")
      switch fields.first {
      case "C" where fields.count == 4:
        ledger.campaigns[String(fields[1])] = (Int(fields[2]) ?? -1, Int(fields[3]) ?? -1)
        campaigns += 1
      case "A" where fields.count == 4:
        let user = fields[2] == "-" ? nil : String(fields[2])
        ledger.coupons[String(fields[3])] = (String(fields[1]), user)
        claims += 1
      default:
        break
      }
    }
    return (claims, campaigns)
  }

  /// Reopens the store and checks it against the ledger and the invariants. Returns the torn
  /// tail cut on opening.
  static func verify(_ directory: String, _ ledger: Ledger, problems: inout [String]) async
    -> Int64
  {
    guard FileManager.default.fileExists(atPath: directory) else {
      if !ledger.campaigns.isEmpty { problems.append("the store directory is gone") }
      return 0
    }
    do {
      let inspection = try CouponStore.inspect(directory: directory)
      problems += inspection.problems.map { "inspect: " + $0 }
    } catch {
      problems.append("inspect failed: \(error)")
    }
    let store: CouponStore
    do {
      store = try await CouponStore.open(directory: directory)
    } catch {
      problems.append("open failed: \(error)")
      return 0
    }
    do {
      var found: [String: (campaign: String, user: String?)] = [:]
      let campaigns = try await store.campaigns()
      for campaign in campaigns {
        if campaign.issued > campaign.stock {
          problems.append("\(campaign.id) oversold: \(campaign.issued) > \(campaign.stock)")
        }
        var held: [String: Int] = [:]
        var cursor: ClaimCursor?
        var listed = 0
        repeat {
          guard let page = try await store.claims(of: campaign.id, after: cursor, limit: 100_000)
          else { break }
          for claim in page.claims {
            if found[claim.code] != nil { problems.append("code \(claim.code) issued twice") }
            found[claim.code] = (campaign.id, claim.user)
            if let user = claim.user { held[user, default: 0] += 1 }
          }
          listed += page.claims.count
          cursor = page.next
        } while cursor != nil
        if listed != campaign.issued {
          problems.append("\(campaign.id) lists \(listed) claims but reports \(campaign.issued)")
        }
        for (user, count) in held where count > campaign.perUserLimit {
          problems.append(
            "\(user) holds \(count) of \(campaign.id), limit \(campaign.perUserLimit)")
        }
      }
      for (id, facts) in ledger.campaigns {
        guard let campaign = campaigns.first(where: { $0.id == id }) else {
          problems.append("acknowledged campaign \(id) is missing")
          continue
        }
        if campaign.stock != facts.stock || campaign.perUserLimit != facts.perUserLimit {
          problems.append("campaign \(id) changed: \(campaign)")
        }
      }
      var missing = 0
      for (code, facts) in ledger.coupons {
        guard let actual = found[code] else {
          missing += 1
          if missing <= 10 { problems.append("acknowledged claim \(code) (\(facts)) is missing") }
          continue
        }
        if actual.campaign != facts.campaign || actual.user != facts.user {
          problems.append("claim \(code) is \(actual), acknowledged as \(facts)")
        }
      }
      if missing > 10 { problems.append("\(missing) acknowledged claims missing in all") }
    } catch {
      problems.append("reading the reopened store failed: \(error)")
    }
    // Closed before the next child starts: it needs the directory's lock.
    do {
      try await store.close()
    } catch {
      problems.append("closing the reopened store failed: \(error)")
    }
    return store.recovery.tornTailBytesCut
  }

  static func waitForNewFile(in directory: String, prefix: String, timeoutMillis: Int) {
    let before = Set(
      (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter {
        $0.hasPrefix(prefix)
      } ?? [])
    let deadline = ContinuousClock.now + .milliseconds(timeoutMillis)
    while ContinuousClock.now < deadline {
      let now = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
      if now.contains(where: { $0.hasPrefix(prefix) && !before.contains($0) }) { return }
      usleep(200)
    }
  }

  static func logBytes(_ directory: String) -> Int64 {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.reduce(0) { total, name in
      let size =
        (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name))?[
          .size] as? NSNumber
      return total + (size?.int64Value ?? 0)
    }
  }

  /// The path of this executable (`/proc/self/exe`), to start it again in child mode.
  static func selfExecutable() throws -> URL {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if count > 0 {
      return URL(
        fileURLWithPath: String(
          decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
  }

  static var isDebugBuild: Bool {
    #if DEBUG
      return true
    #else
      return false
    #endif
  }
}

/// A child process whose stdout is read into memory by a thread.
///
/// `@unchecked Sendable`: `process` is used only by the parent's main flow (start, kill, wait);
/// the reader thread touches only `output` (behind a `Mutex`) and the semaphores.
final class ChildProcess: @unchecked Sendable {
  private let process: Process
  private let output = Mutex<[UInt8]>([])
  private let ready = DispatchSemaphore(value: 0)
  private let readerDone = DispatchSemaphore(value: 0)

  init(executable: URL, arguments: [String]) throws {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    self.process = process
    try process.run()
    // The child holds the write end now; ours must go, or the reader never sees end of file.
    try? pipe.fileHandleForWriting.close()
    let reading = pipe.fileHandleForReading
    let thread = Thread { [self] in
      var signalled = false
      while true {
        let data = reading.availableData
        if data.isEmpty { break }
        let complete = output.withLock { bytes -> Bool in
          bytes.append(contentsOf: data)
          return !signalled && bytes.starts(with: Array("READY ".utf8))
            && bytes.contains(UInt8(ascii: "\n"))
        }
        if complete {
          signalled = true
          ready.signal()
        }
      }
      try? reading.close()
      readerDone.signal()
    }
    thread.start()
  }

  /// Waits (up to 60 s) until the child reported READY.
  func waitForReady() -> Bool {
    ready.wait(timeout: .now() + 60) == .success
  }

  func kill() {
    _ = Glibc.kill(process.processIdentifier, SIGKILL)
  }

  /// Waits for the child's end and returns its complete output lines and how it ended.
  func finish() -> (lines: [Substring], killed: Bool, status: Int32) {
    process.waitUntilExit()
    readerDone.wait()
    let bytes = output.withLock { $0 }
    let text = String(decoding: bytes, as: UTF8.self)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
    if !text.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() }  // cut by the kill
    let killed =
      process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
    return (lines, killed, process.terminationStatus)
  }
}

/// Prints a line at once (unbuffered), so that progress shows when the output goes to a file or
/// a pipe (`print` buffers those until exit).
func say(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
