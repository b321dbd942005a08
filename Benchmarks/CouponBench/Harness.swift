// What every scenario shares: the run context, the closed-loop driver with its preallocated
// latency records, repetition (warm-up, then timed runs) and the progress line.
//
// Recording must not disturb what it records. Every operation's start and end are written as raw
// monotonic nanoseconds into one buffer allocated (and touched, so no page fault is timed) before
// the run; task `t` owns the slice `t * perTask ..< (t + 1) * perTask` and nothing else writes it,
// so recording takes no lock, no atomic and no allocation. The slices are merged (sorted) only
// after the task group has finished.

import CouponStore
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A benchmark scenario, selected on the command line by its name.
protocol Scenario: Sendable {
  /// The name on the command line and in the report.
  var name: String { get }
  /// One line on what it measures.
  var summary: String { get }
  /// Runs the scenario: warm-up, timed runs, invariant checks.
  func run(_ bench: Bench) async throws -> ScenarioReport
}

/// Every scenario, in the order a full run goes through them.
enum ScenarioRegistry {
  static let all: [any Scenario] = [
    // memory first: the resident set of a fresh process; after scenarios that freed gigabytes,
    // the allocator reuses pages that stay resident and the growth is under-counted.
    MemoryBenchmark(), FlashSaleBenchmark(), SellOutBenchmark(), DoubleDipBenchmark(),
    SpreadBenchmark(), BatchBenchmark(), LifecycleBenchmark(), OpenLoopBenchmark(),
    RecoveryBenchmark(), SnapshotStallBenchmark(),
  ]

  static func named(_ name: String) -> (any Scenario)? {
    all.first { $0.name == name }
  }
}

/// What a scenario gets: the options, the disk's limits, a place for its stores, the progress
/// line.
final class Bench: Sendable {
  let options: BenchOptions
  let baseline: DiskBaseline
  /// This run's own directory inside `--data-dir`; removed at the end unless `--keep`.
  let root: String
  let progress: Progress
  private let storesCreated = Atomic<Int>(0)

  init(options: BenchOptions, baseline: DiskBaseline, root: String, progress: Progress) {
    self.options = options
    self.baseline = baseline
    self.root = root
    self.progress = progress
  }

  /// The baseline with the fdatasync latency measured again now, for a case that runs long after
  /// the scenario started (each concurrency level of a sweep).
  func remeasuredBaseline() throws(BenchError) -> DiskBaseline {
    try baseline.remeasuringLatency(directory: root, quick: options.quick, progress: progress)
  }

  /// Store options for every scenario: synchronous unless `--no-sync`.
  var storeOptions: CouponStore.Options {
    var options = CouponStore.Options()
    options.durability = self.options.noSync ? .noSync : .synchronous
    return options
  }

  /// Opens a store in a fresh directory named after `label`.
  func openFreshStore(_ label: String) async throws -> (store: CouponStore, directory: String) {
    let number = storesCreated.add(1, ordering: .relaxed).newValue
    let directory = "\(root)/\(label)-\(number)"
    return (try await CouponStore.open(directory: directory, options: storeOptions), directory)
  }

  /// Closes `store` and, unless `--keep`, deletes its directory.
  func closeAndRemove(_ store: CouponStore, _ directory: String) async throws {
    try await store.close()
    if !options.keep { try? FileManager.default.removeItem(atPath: directory) }
  }

  /// Like ``closeAndRemove(_:_:)``, after noting in `report` how many automatic snapshots the
  /// store wrote (or was writing) while the scenario ran. A snapshot shares the cores with the
  /// runs it overlaps, so it pulls their throughput down and widens the min–max; the note says
  /// why.
  func closeAndRemove(
    _ store: CouponStore, _ directory: String, noting report: inout ScenarioReport
  ) async throws {
    let statistics = try await store.statistics()
    let snapshots = statistics.snapshotsWritten + (statistics.snapshotInProgress ? 1 : 0)
    if snapshots > 0 {
      let every = formatBytes(Double(storeOptions.snapshotLogBytes))
      report.notes.append(
        "\(snapshots) automatic snapshot\(snapshots == 1 ? "" : "s") ran during the runs (one per "
          + "\(every) of log, the default); each shares the "
          + "\(ProcessInfo.processInfo.activeProcessorCount) cores with the runs it overlaps")
    }
    try await closeAndRemove(store, directory)
  }

  /// Runs `body` for the warm-up runs (their results dropped) and then for the timed runs,
  /// showing which one is under way; returns the timed runs' results.
  func repeated<T>(_ label: String, _ body: (_ run: Int) async throws -> T) async throws -> [T] {
    var results: [T] = []
    let total = options.warmups + options.runs
    for run in 0..<total {
      let warm = run < options.warmups
      progress.update(
        "\(label): " + (warm ? "warm-up" : "run \(run - options.warmups + 1)/\(options.runs)"))
      let result = try await body(run)
      if !warm { results.append(result) }
    }
    return results
  }

  /// How many operations each of `tasks` closed-loop callers does in one run, so that the run
  /// lasts about ``BenchOptions/runSecondsTarget``: a round costs one sync plus the writer's
  /// time for `tasks` claims (a few microseconds each, assumed).
  func operationsPerTask(tasks: Int, cpuNanosPerOp: Double = 3_000) -> Int {
    let syncNanos = baseline.synchronous ? baseline.syncLatency.p50 : 20_000
    let round = syncNanos + Double(tasks) * cpuNanosPerOp
    let rounds = Int(options.runSecondsTarget * 1e9 / round)
    let cap = max(1, 1_000_000 / tasks)
    return min(max(rounds, options.quick ? 2 : 5), max(cap, 2))
  }
}

/// What one operation returned, as a byte (so recording it allocates nothing).
enum Outcome: UInt8, Sendable {
  case none = 0
  case claimed
  case limitReached
  case soldOut
  case notStarted
  case ended
  case campaignNotFound
  case codeNotFound
  case codeTaken

  init(_ result: ClaimResult) {
    switch result {
    case .claimed: self = .claimed
    case .limitReached: self = .limitReached
    case .soldOut: self = .soldOut
    case .notStarted: self = .notStarted
    case .ended: self = .ended
    case .campaignNotFound: self = .campaignNotFound
    case .codeNotFound: self = .codeNotFound
    case .codeTaken: self = .codeTaken
    }
  }
}

/// One timed operation: when it started (or, open-loop, was due to start), when it completed,
/// what it returned, and a value the scenario may check (a fingerprint of the issued code).
struct OpRecord {
  var start: UInt64 = 0
  var end: UInt64 = 0
  var value: UInt64 = 0
  var outcome: Outcome = .none

  var latency: UInt64 { end &- start }
}

/// A preallocated buffer of ``OpRecord``s shared by the tasks of one run.
///
/// `@unchecked Sendable`: each task writes only its own disjoint slots, and the buffer is read
/// only after every writer has finished (the end of the closed loop's task group, or the open
/// loop's completion count under its mutex), which orders every write before the read; the buffer
/// is freed when the last reference goes.
final class OpRecords: @unchecked Sendable {
  let buffer: UnsafeMutableBufferPointer<OpRecord>

  init(count: Int) {
    buffer = .allocate(capacity: count)
    // Initialising touches every page now, so no page fault lands inside a timed operation.
    buffer.initialize(repeating: OpRecord())
  }

  deinit { buffer.deallocate() }

  var count: Int { buffer.count }

  subscript(index: Int) -> OpRecord {
    get { buffer[index] }
    set { buffer[index] = newValue }
  }

  /// Every operation's latency, ascending.
  func sortedLatencies() -> [UInt64] {
    buffer.map(\.latency).sorted()
  }

  /// How many operations had `outcome`.
  func count(_ outcome: Outcome) -> Int {
    buffer.reduce(0) { $0 + ($1.outcome == outcome ? 1 : 0) }
  }
}

/// One closed-loop run: `tasks` callers, each doing its operations back to back.
struct LoopRun {
  var records: OpRecords
  var startNanos: UInt64
  var wallNanos: UInt64
  /// CPU seconds the whole process (callers, writer, syncer, runtime) spent during the run.
  var cpuSeconds: Double

  var seconds: Double { Double(wallNanos) / 1e9 }
  var operationsPerSecond: Double { Double(records.count) / seconds }
  /// CPU nanoseconds per operation, every thread of the process included.
  var cpuNanosPerOperation: Double { cpuSeconds * 1e9 / Double(records.count) }
}

/// The closed-loop driver: `tasks` concurrent callers, each doing `perTask` operations one after
/// the other; `operation(i)` is the `i`th operation overall (task `t` does
/// `t * perTask ..< (t + 1) * perTask`). Wall time runs from before the first task is created to
/// after the last one finished.
enum ClosedLoop {
  static func run(
    tasks: Int, perTask: Int,
    _ operation: @escaping @Sendable (Int) async throws -> (Outcome, UInt64)
  ) async throws -> LoopRun {
    let records = OpRecords(count: tasks * perTask)
    let cpuBefore = CPUSample.processSeconds()
    let started = Clock.nanos()
    try await withThrowingDiscardingTaskGroup { group in
      for task in 0..<tasks {
        group.addTask {
          for index in task * perTask..<(task + 1) * perTask {
            let start = Clock.nanos()
            let (outcome, value) = try await operation(index)
            records[index] = OpRecord(
              start: start, end: Clock.nanos(), value: value, outcome: outcome)
          }
        }
      }
    }
    let ended = Clock.nanos()
    return LoopRun(
      records: records, startNanos: started, wallNanos: ended - started,
      cpuSeconds: CPUSample.processSeconds() - cpuBefore)
  }
}

/// The progress line on standard error: rewritten in place on a terminal (at most five times a
/// second), and at most one line every ten seconds when standard error is a file or a pipe.
final class Progress: Sendable {
  private struct State {
    var lastPrinted: UInt64 = 0
    var showing = false
  }

  private let state = Mutex(State())
  private let terminal = isatty(STDERR_FILENO) == 1

  /// Shows `text` (throttled).
  func update(_ text: String) {
    let line = state.withLock { state -> String? in
      let now = Clock.nanos()
      let interval: UInt64 = terminal ? 200_000_000 : 10_000_000_000
      guard now &- state.lastPrinted >= interval || (terminal && !state.showing) else {
        return nil
      }
      state.lastPrinted = now
      state.showing = terminal
      return terminal ? "\r\u{1B}[K  … \(text)" : "  … \(text)\n"
    }
    if let line { writeStandardError(line) }
  }

  /// Removes the line, before printing results to standard output.
  func clear() {
    let wasShowing = state.withLock { state in
      defer {
        state.showing = false
        state.lastPrinted = 0
      }
      return state.showing
    }
    if wasShowing { writeStandardError("\r\u{1B}[K") }
  }
}

/// Writes `text` and a newline to standard output with `write(2)`: unbuffered, so a CI log shows
/// each table the moment it is printed, even through a pipe.
func emit(_ text: String = "", terminator: String = "\n") {
  var line = text + terminator
  line.withUTF8 { bytes in _ = write(STDOUT_FILENO, bytes.baseAddress, bytes.count) }
}

/// A counter tasks share (progress of a build phase; never on a timed path).
final class SharedCounter: Sendable {
  private let value = Atomic<Int>(0)

  /// Adds `amount`; returns the new total.
  func add(_ amount: Int) -> Int { value.add(amount, ordering: .relaxed).newValue }
}

/// Writes `text` to standard error unbuffered (`write(2)`: no shared `FILE *` between tasks).
func writeStandardError(_ text: String) {
  var text = text
  text.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

/// A 64-bit FNV-1a fingerprint of a string: lets a task record "which code did I see" in a
/// number, so that recording allocates nothing.
func fingerprint(_ text: String) -> UInt64 {
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
  return hash
}

/// Every claim record of `campaign`, paged.
func allClaims(_ store: CouponStore, _ campaign: CampaignID) async throws -> [ClaimRecord] {
  var claims: [ClaimRecord] = []
  var cursor: ClaimCursor?
  repeat {
    guard let page = try await store.claims(of: campaign, after: cursor, limit: 100_000) else {
      break
    }
    claims += page.claims
    cursor = page.next
  } while cursor != nil
  return claims
}

/// A campaign whose stock no run exhausts, with generated codes of the default pattern.
func ampleCampaign(_ id: String, stock: Int) -> CampaignSpec {
  CampaignSpec(id: id, name: id, stock: stock, codes: .generated(.alphanumeric))
}

extension ResultRow {
  /// Fills the latency columns from closed-loop runs.
  mutating func setLatency(of what: String, loops: [LoopRun]) {
    setLatency(of: what, runs: loops.map { $0.records.sortedLatencies() })
  }

  /// Adds the CPU the process spent per operation, and the rate that CPU cost would allow if
  /// every core did nothing else: when throughput sits far below the disk's limit, this says
  /// whether the CPU is why.
  mutating func addCPUMetrics(_ runs: [LoopRun], operationsPerRecord: Int = 1, unit: String) {
    let perOperation = Spread(runs.map { $0.cpuNanosPerOperation / Double(operationsPerRecord) })
    let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
    metrics.append(Metric(name: "CPU per \(unit), all threads", value: perOperation, unit: .nanos))
    metrics.append(
      Metric(
        name: "CPU-bound ceiling (\(Int(cores)) cores ÷ CPU per \(unit))",
        value: Spread(perOperation.values.map { cores * 1e9 / $0 }), unit: .perSecond))
  }

  /// Sets the disk's limit for a closed loop of `callers`, each call carrying `opsPerCall`
  /// operations of `logBytesPerOp` bytes: one call per caller per fdatasync, capped by bandwidth.
  mutating func setClosedLoopLimit(
    _ baseline: DiskBaseline, callers: Int, opsPerCall: Int = 1, logBytesPerOp: Double
  ) {
    self.logBytesPerOp = logBytesPerOp
    limit = baseline.closedLoopLimit(
      callers: callers, opsPerCall: opsPerCall, bytesPerOp: logBytesPerOp)
    guard baseline.synchronous else { return }
    let syncBound = Double(callers * opsPerCall) * baseline.syncsPerSecond
    let bandwidthBound = baseline.bandwidthBytesPerSecond / max(logBytesPerOp, 1)
    limitBasis =
      syncBound <= bandwidthBound
      ? "\(callers * opsPerCall) claim(s) per fdatasync at its p50"
      : "append bandwidth ÷ \(String(format: "%.0f", logBytesPerOp)) log B/claim"
  }
}
