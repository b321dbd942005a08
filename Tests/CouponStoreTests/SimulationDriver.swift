// The simulator: seeded scenarios that run the real engine on a simulated disk, crash it, corrupt
// it and fail its system calls, and check every recovery against the reference model.
//
// A seed decides everything the simulation decides: the kind of scenario, how many callers, what
// each caller does, when the power goes out (as an operation number on the disk), which unsynced
// writes the crash keeps or tears, which operation fails and how, which bit flips. What a seed
// does not decide: the coupon codes and segment salts (the engine draws them from the kernel's
// CSPRNG, as it must), with several callers the order in which the writer sees their calls, and
// when the background snapshotter's operations fall between the writer's.
// A scenario with one caller is therefore replayed exactly by its seed; one with several is
// replayed up to the interleaving, so a rare failure may need a few reruns.
//
// Scenario kinds:
// - crash: one to three lives; each life opens the store on the disk the last crash left
//   (sometimes crashing again during recovery), checks it against the model, runs the workload
//   with the power set to go out at a random operation (half the time aimed at the next data or
//   directory sync, where group commit and segment rolls are), and crashes. A final life checks
//   the last crash, closes cleanly, reopens and checks that nothing changed.
// - failAtN: SQLite-style. A disk with some history and a torn tail is prepared (and the model
//   settled on what a recovery of a copy of it finds, since the calls in flight at its crash
//   may or may not have survived and the trials' one caller is predicted exactly); then for
//   N = 1, 2, 3 … the Nth operation of "recover, then run a fixed workload" fails with EIO or
//   ENOSPC, until N passes the last operation. Each time: the failed call and every later call
//   throw (fail-stop), and both a restart without power loss and a power loss recover everything
//   acknowledged.
// - bitFlip: after a store's lives and crashes, one bit flips in log data that was synced before
//   the last crash (a latent sector error), anywhere, the last segment included. Opening must
//   refuse with `corruption` naming the file and an offset at or before the flip (salvage then
//   recovers a correct prefix), unless the flip is in the very last record, which is cut like a
//   torn write (a documented limit): never may it serve wrong data. A flip in a snapshot file
//   must be detected: the open falls back to the older snapshot or the whole log and serves
//   exactly the acknowledged state, or refuses with `corruption` naming the file.
//
// Snapshots: the workload asks for some, and a third of the scenarios open the store with a
// `snapshotLogBytes` of a few hundred bytes, so that the background snapshotter writes one every
// few batches; crashes, faults and flips then land in snapshot writing (temporary file, sync,
// rename, directory sync, deleting covered segments and older snapshots). The statistics count
// the crashes that hit the snapshotter's own operations.

import CouponSimulation
import Foundation
import Glibc

@testable import CouponStore

enum SimulationKind: String, Sendable {
  case crash
  case failAtN
  case bitFlip
}

/// Counts over one or many scenarios, for the report.
struct SimulationStats: Sendable {
  var scenarios = 0
  var crashes = 0
  var crashesMidWorkload = 0
  var crashesDuringRecovery = 0
  var faultsInjected = 0
  var bitFlips = 0
  var refusedOpens = 0
  var refusedAfterReorder = 0
  var salvages = 0
  var tornTailsCut = 0
  var acknowledgedWrites = 0
  var failedCalls = 0
  var lifecycleCalls = 0
  var lifecycleDone = 0
  /// Lifecycle calls and uploads cut by a crash or a fault (in flight: may or may not have
  /// happened).
  var lifecycleInFlight = 0
  var uploads = 0
  var snapshotsWritten = 0
  var snapshotFailures = 0
  var opensFromSnapshot = 0
  /// Crashes whose power cut was an operation of the snapshotter thread (a snapshot's write,
  /// sync, rename, directory sync, or a deletion of what it covers).
  var crashesInSnapshot = 0
  /// Crashes that left an unfinished snapshot file behind.
  var crashesWithSnapshotTemporary = 0
  /// Faults that hit the snapshotter thread (the store must go on, or stop, and lose nothing).
  var faultsInSnapshot = 0
  var snapshotFlips = 0
  var damagedSnapshotsSkipped = 0

  mutating func add(_ other: SimulationStats) {
    scenarios += other.scenarios
    crashes += other.crashes
    crashesMidWorkload += other.crashesMidWorkload
    crashesDuringRecovery += other.crashesDuringRecovery
    faultsInjected += other.faultsInjected
    bitFlips += other.bitFlips
    refusedOpens += other.refusedOpens
    refusedAfterReorder += other.refusedAfterReorder
    salvages += other.salvages
    tornTailsCut += other.tornTailsCut
    acknowledgedWrites += other.acknowledgedWrites
    failedCalls += other.failedCalls
    lifecycleCalls += other.lifecycleCalls
    lifecycleDone += other.lifecycleDone
    lifecycleInFlight += other.lifecycleInFlight
    uploads += other.uploads
    snapshotsWritten += other.snapshotsWritten
    snapshotFailures += other.snapshotFailures
    opensFromSnapshot += other.opensFromSnapshot
    crashesInSnapshot += other.crashesInSnapshot
    crashesWithSnapshotTemporary += other.crashesWithSnapshotTemporary
    faultsInSnapshot += other.faultsInSnapshot
    snapshotFlips += other.snapshotFlips
    damagedSnapshotsSkipped += other.damagedSnapshotsSkipped
  }

  var summary: String {
    "\(scenarios) scenarios: \(crashes) crashes verified (\(crashesMidWorkload) mid-workload, "
      + "\(crashesDuringRecovery) during recovery), \(faultsInjected) injected faults, "
      + "\(bitFlips) bit flips, \(tornTailsCut) torn tails cut, \(refusedOpens) opens refused "
      + "(\(refusedAfterReorder) after out-of-order writeback), "
      + "\(salvages) salvages, \(acknowledgedWrites) acknowledged writes, \(failedCalls) failed calls; "
      + "\(lifecycleCalls) lifecycle calls (\(lifecycleDone) done, \(lifecycleInFlight) in flight at "
      + "a crash or fault), \(uploads) uploads; \(snapshotsWritten) snapshots "
      + "written, \(snapshotFailures) failed, \(opensFromSnapshot) opens from a snapshot, "
      + "\(crashesInSnapshot) crashes on a snapshotter operation, \(crashesWithSnapshotTemporary) "
      + "with an unfinished snapshot file, \(faultsInSnapshot) faults in snapshots, "
      + "\(snapshotFlips) snapshot bit flips (\(damagedSnapshotsSkipped) damaged snapshots skipped)"
  }
}

/// The outcome of one seed.
struct SimulationResult: Sendable {
  var seed: UInt64
  var kind: SimulationKind
  var workers: Int
  var violations: [String]
  var story: [String]
  var recentOperations: [String]
  var stats: SimulationStats

  /// The failure message: seed, violations, what happened, the last disk operations, and the
  /// command that replays it.
  var report: String {
    let exactness =
      workers == 1
      ? "one caller: the seed replays it exactly"
      : "\(workers) concurrent callers: the seed replays all but their interleaving; rerun if "
        + "it does not fail at once"
    var lines = ["simulation seed \(seed) (\(kind.rawValue), \(exactness)) found:"]
    lines += violations.prefix(20).map { "  ✗ " + $0 }
    if violations.count > 20 { lines.append("  … and \(violations.count - 20) more") }
    lines.append("  what happened:")
    lines += story.suffix(30).map { "    " + $0 }
    lines.append("  last disk operations:")
    lines += recentOperations.suffix(24).map { "    " + $0 }
    lines.append("  reproduce: SIMULATION_SEED=\(seed) swift test --filter Simulation")
    return lines.joined(separator: "\n")
  }
}

struct Simulation {
  static let directory = "/srv/store"
  static let now: Int64 = 1_800_000_000_000

  let seed: UInt64
  let kind: SimulationKind
  var random: SimulationRandom
  let workers: Int
  let lives: Int
  let callsPerWorker: Int
  let bulk: Bool
  let batchRecordsMax: Int
  let segmentBytesMax: Int
  /// `Options.snapshotLogBytes`: 0 (no automatic snapshots) or a few hundred bytes.
  let snapshotLogBytes: Int
  /// The store's clock, moved forward by the callers.
  let clock = SimulationClock(Simulation.now)
  var model = SimulationModel()
  var violations: [String] = []
  var story: [String] = []
  var stats = SimulationStats()
  var lastDisk: SimulatedFileSystem?
  /// Files where an out-of-order-writeback crash may have left a hole that no successful open
  /// has repaired since, with the synced length below which the hole cannot be. A crash during
  /// the recovery of such a disk keeps the hole, and the next crash's report no longer knows those
  /// bytes were never synced (found by soak seeds 17927338107855521558, 16448712152163308046 and
  /// 7686541374111696194).
  var unrepairedHoles: [String: Int] = [:]

  /// Draws the scenario's shape from the seed.
  init(seed: UInt64) {
    self.seed = seed
    var random = SimulationRandom(seed: seed)
    switch random.below(100) {
    case 0..<80: kind = .crash
    case 80..<92: kind = .bitFlip
    default: kind = .failAtN
    }
    workers = kind == .failAtN || random.chance(0.5) ? 1 : random.int(in: 2...6)
    lives = random.int(in: 1...3)
    callsPerWorker = kind == .failAtN ? random.int(in: 4...8) : random.int(in: 4...16)
    bulk = kind == .crash && random.chance(1.0 / 16)
    batchRecordsMax = random.chance(0.5) ? random.int(in: 1...8) : 16_384
    // Mostly tiny segments, so that rolls (sync the full segment, create the next, sync the
    // directory) happen every few records and crashes land in the middle of them.
    segmentBytesMax = random.chance(0.75) ? random.int(in: 100...2_000) : 1 << 20
    snapshotLogBytes = random.chance(0.35) ? random.int(in: 200...4_000) : 0
    self.random = random
  }

  /// Runs the scenario of `seed`. Never throws: every problem is a violation in the result.
  static func run(seed: UInt64) async -> SimulationResult {
    var simulation = Simulation(seed: seed)
    simulation.stats.scenarios = 1
    switch simulation.kind {
    case .crash: await simulation.runCrashScenario()
    case .failAtN: await simulation.runFailAtN()
    case .bitFlip: await simulation.runBitFlip()
    }
    return SimulationResult(
      seed: seed, kind: simulation.kind, workers: simulation.workers,
      violations: simulation.violations, story: simulation.story,
      recentOperations: simulation.lastDisk?.recentOperations ?? [], stats: simulation.stats)
  }

  /// An empty disk on which the store's parent directory, `/srv`, exists durably.
  mutating func newDisk() -> SimulatedFileSystem {
    let disk = SimulatedFileSystem(seed: random.next())
    do {
      try disk.createDirectory("/srv")
      try disk.syncDirectory("/")
    } catch {
      preconditionFailure("a fresh simulated disk failed: \(error)")
    }
    return disk
  }

  func options(_ disk: SimulatedFileSystem, salvage: Bool = false) -> CouponStore.Options {
    var options = CouponStore.Options()
    options.fileSystem = disk
    let clock = clock
    options.clock = { Date(millis: clock.millis) }
    options.snapshotLogBytes = snapshotLogBytes
    options.batchBytesMax = 64 << 10
    options.allowsTinySegments = true
    options.segmentBytesMax = segmentBytesMax
    options.batchRecordsMax = batchRecordsMax
    options.salvage = salvage
    return options
  }

  // MARK: Crash scenarios

  mutating func runCrashScenario() async {
    var disk = newDisk()
    lastDisk = disk
    for life in 0..<lives {
      var armed = false
      if life > 0 && random.chance(0.25) {
        // Crash again while recovering from the last crash.
        let at = disk.operationCount + random.int(in: 1...24)
        disk.powerOff(atOperation: at)
        armed = true
        story.append("life \(life): power set to go out at operation \(at), during recovery")
      }
      guard let store = await recover(disk) else {
        disk = await crash(disk, store: nil)
        continue
      }
      if !armed { armPowerOff(disk, life: life, within: workers * callsPerWorker * 2 + 6) }
      await runLife(life, store: store)
      disk = await crash(disk, store: store)
    }
    // The last crash must recover too; then a clean close and reopen change nothing.
    guard let store = await recover(disk) else { return }
    await closeAndReopenChangesNothing(store, disk)
  }

  /// ``recover(_:model:flip:)`` against the scenario's own model.
  mutating func recover(_ disk: SimulatedFileSystem, flip: BitFlip? = nil) async -> CouponStore? {
    var model = self.model
    defer { self.model = model }
    return await recover(disk, model: &model, flip: flip)
  }

  /// Sets the power to go out during the coming workload: at a uniformly chosen operation, or
  /// (half the time) at the first directory sync or data sync after it, where the windows of
  /// segment rolls and group commit are.
  mutating func armPowerOff(_ disk: SimulatedFileSystem, life: Int, within operations: Int) {
    let at = disk.operationCount + random.int(in: 1...operations)
    let kinds: Set<SimulatedOperation>
    switch random.below(4) {
    case 0: kinds = [.syncDirectory]
    case 1: kinds = [.syncData, .sync]
    default: kinds = []
    }
    disk.powerOff(atOperation: at, kinds: kinds)
    let aim = kinds.isEmpty ? "" : " (the first \(kinds.map(\.rawValue).sorted()) from there)"
    story.append("life \(life): power set to go out at operation \(at)\(aim)")
  }

  /// Opens a store on `disk` after a crash (inspecting it read-only first) and checks what it
  /// holds against `model`, which then adopts it. Returns `nil` if the power went out during
  /// recovery or opening failed (a violation unless the disk allows it).
  mutating func recover(
    _ disk: SimulatedFileSystem, model: inout SimulationModel, flip: BitFlip? = nil
  ) async -> CouponStore? {
    lastDisk = disk
    var inspectError: CouponStoreError?
    if !disk.isPoweredOff && disk.fileExists(Simulation.directory) {
      do {
        let inspection = try CouponStore.inspect(
          directory: Simulation.directory, fileSystem: disk.copy(seed: 0))
        // A flipped snapshot is damage inspect must report.
        let flipped = flip.map { String($0.path.split(separator: "/").last ?? "") }
        for problem in inspection.problems
        where !(flipped.map { $0.hasPrefix("snapshot-") && problem.contains($0) } ?? false) {
          violations.append("inspect: " + problem)
        }
      } catch {
        if error.code != .io || !disk.isPoweredOff { inspectError = error }
      }
    }
    let flippedFileBytes = flip.flatMap { disk.contents(of: $0.path)?.count }
    var salvaged = false
    let store: CouponStore
    do {
      store = try await CouponStore.open(directory: Simulation.directory, options: options(disk))
    } catch {
      if disk.isPoweredOff && error.code == .io {
        story.append("  power out during recovery: \(error.syscall ?? "?") failed")
        stats.crashesDuringRecovery += 1
        return nil
      }
      guard error.code == .corruption else {
        violations.append("open failed: \(error)")
        return nil
      }
      stats.refusedOpens += 1
      if flip == nil { stats.refusedAfterReorder += 1 }
      story.append("  open refused: \(error)")
      if let problem = corruptionProblem(error, disk: disk, flip: flip) {
        violations.append(problem)
      }
      if inspectError?.code != .corruption {
        violations.append(
          "open refused with corruption, but inspect said \(String(describing: inspectError))")
      }
      do {
        store = try await CouponStore.open(
          directory: Simulation.directory, options: options(disk, salvage: true))
      } catch {
        if disk.isPoweredOff && error.code == .io {
          stats.crashesDuringRecovery += 1
          return nil
        }
        violations.append("salvage failed after \(error)")
        return nil
      }
      salvaged = true
      stats.salvages += 1
      if store.recovery.salvagedBytesDropped == 0 {
        violations.append("salvage reported nothing dropped after a refused open")
      }
    }
    if let inspectError, !salvaged {
      violations.append("inspect failed (\(inspectError)) but open succeeded")
    }
    unrepairedHoles = [:]
    if store.recovery.tornTailBytesCut > 0 { stats.tornTailsCut += 1 }
    if store.recovery.snapshotSequence > 0 { stats.opensFromSnapshot += 1 }
    if !store.recovery.damagedSnapshots.isEmpty { stats.damagedSnapshotsSkipped += 1 }
    story.append(
      "  opened: \(store.recovery.recordsReplayed) records, torn tail "
        + "\(store.recovery.tornTailBytesCut) bytes\(salvaged ? ", salvaged" : ""), snapshot "
        + "\(store.recovery.snapshotSequence)\(store.recovery.damagedSnapshots.isEmpty ? "" : ", skipped \(store.recovery.damagedSnapshots)")"
    )
    let observed: ObservedState
    do {
      observed = try await store.observe(codes: model.trackedCodes, time: clock.millis)
    } catch {
      // Reads expire due locks, which writes: the power may go out there too.
      if disk.isPoweredOff && [.io, .stopped].contains(error.code) {
        story.append("  power out while reading the recovered store")
        stats.crashesDuringRecovery += 1
      } else {
        violations.append("reading the recovered store failed: \(error)")
      }
      try? await store.close()
      return nil
    }
    // A flip in a snapshot, or in log the snapshot recovery started from covers, costs nothing:
    // the open must detect a damaged snapshot it would load and fall back, and serve exactly
    // the acknowledged state.
    let harmlessFlip = flip.map { flipIsHarmless($0, disk: disk, store: store) } ?? false
    if let flip, !salvaged, !harmlessFlip {
      // The open succeeded although a synced bit flipped: only a cut last record may explain it.
      let cut = store.recovery.tornTailBytesCut
      let fileGone = !disk.fileExists(flip.path)
      let inCutTail = cut > 0 && Int64(flip.offset) >= Int64(flippedFileBytes ?? 0) - cut
      if !fileGone && !inCutTail {
        violations.append("\(flip) flipped, yet the store opened without cutting it (served)")
      }
      let lost =
        model.coupons.keys.filter { observed.coupons[$0] == nil }.count
        + model.campaigns.keys.filter { id in !observed.campaigns.contains { $0.id == id } }.count
      if lost > 1 {
        violations.append("\(flip) cut as a torn tail lost \(lost) acknowledged records, not 1")
      }
    }
    let lossy = flip != nil && (salvaged || !harmlessFlip)
    violations += model.violations(of: observed, lossy: lossy)
    model.resolve(observed, lossy: lossy)
    return store
  }

  /// Whether `flip` is in a snapshot file or in a log segment that the snapshot the store
  /// started from wholly covers (not read on open); for a snapshot, checks that the open did not
  /// load it undetected.
  mutating func flipIsHarmless(_ flip: BitFlip, disk: SimulatedFileSystem, store: CouponStore)
    -> Bool
  {
    let name = String(flip.path.split(separator: "/").last ?? "")
    if name.hasPrefix("snapshot-") {
      let loaded = store.recovery.snapshotSequence
      let flipped = SnapshotFile.sequence(fromName: name)
      if flipped == loaded && loaded > 0
        && !store.recovery.damagedSnapshots.contains(where: { $0.contains(name) })
      {
        violations.append("\(flip) flipped, yet the store loaded that snapshot undetected")
      }
      return true
    }
    guard let first = SegmentFile.firstSequence(fromName: name) else { return false }
    let next = disk.files().compactMap {
      SegmentFile.firstSequence(fromName: String($0.path.split(separator: "/").last ?? ""))
    }.filter { $0 > first }.min()
    return next.map { $0 <= store.recovery.snapshotSequence + 1 } ?? false
  }

  /// Why a refused open is wrong, or `nil` if the disk explains it: a flipped bit at or after
  /// the reported offset, or out-of-order writeback that left a hole in never-synced bytes.
  func corruptionProblem(_ error: CouponStoreError, disk: SimulatedFileSystem, flip: BitFlip?)
    -> String?
  {
    guard let path = error.path, let offset = error.offset else {
      return "corruption without a path and offset: \(error)"
    }
    let file = SimulatedFileSystem.canonicalPath(path)
    if let flip {
      guard file == flip.path, offset <= Int64(flip.offset) else {
        return "\(flip) flipped, but open reported corruption at \(file) offset \(offset)"
      }
      return nil
    }
    if let bound = unrepairedHoles[file], offset >= Int64(bound) { return nil }
    guard let report = disk.crashReport else {
      return "open refused a disk that never crashed: \(error)"
    }
    let synced = report.syncedBytes[file] ?? 0
    guard report.policy == .anyWriteback, offset >= Int64(synced) else {
      return "open refused with corruption at \(file) offset \(offset), but \(synced) bytes of "
        + "it were synced and the crash (\(report.policy)) only tore unsynced bytes"
    }
    return nil
  }

  /// Cuts the power (if it is still on), builds the disk the crash leaves, and closes the stopped
  /// store (which joins its threads).
  mutating func crash(_ disk: SimulatedFileSystem, store: CouponStore?) async -> SimulatedFileSystem
  {
    let midWorkload = disk.isPoweredOff
    stats.snapshotsWritten += disk.renameCount
    if disk.powerOffOperation?.thread == Snapshotter.threadName { stats.crashesInSnapshot += 1 }
    if disk.files().contains(where: { $0.path.contains("/snapshot-") && $0.path.hasSuffix(".tmp") })
    {
      stats.crashesWithSnapshotTemporary += 1
    }
    let policy: CrashPolicy
    switch random.below(100) {
    case 0..<20: policy = .dropUnsynced
    case 20..<35: policy = .keepUnsynced
    case 35..<75: policy = .orderedWriteback
    default: policy = .anyWriteback
    }
    let image = disk.crash(policy: policy, random: &random)
    if policy == .anyWriteback {
      for (file, synced) in image.crashReport!.syncedBytes {
        unrepairedHoles[file] = min(unrepairedHoles[file] ?? .max, synced)
      }
    }
    if let store { try? await store.close() }
    stats.crashes += 1
    if midWorkload { stats.crashesMidWorkload += 1 }
    story.append(
      "  crash after operation \(disk.operationCount)\(midWorkload ? "" : " (idle)"): "
        + "\(image.crashReport!)")
    lastDisk = image
    return image
  }

  /// One life's workload: a campaign created up front, then the callers, concurrently.
  mutating func runLife(_ life: Int, store: CouponStore) async {
    var setup = random.split()
    var events: [SimulationEvent] = []
    if life == 0 && bulk {
      let spec = CampaignSpec(id: SimulationWorkload.bulkCampaign, name: "bulk", stock: 1 << 30)
      events.append(.created(spec, try? await store.createCampaign(spec)))
    }
    var spec = SimulationWorkload.spec(
      id: "c-L\(life)", name: "life \(life)", now: clock.millis, random: &setup)
    if spec.codes != .pool && setup.chance(0.5) {
      // Stock for everyone, so that callers hold coupons to lock, redeem and roll back.
      spec.stock = 24
      spec.startsAt = .distantPast
      spec.endsAt = nil
    }
    events.append(.created(spec, try? await store.createCampaign(spec)))
    violations += model.learn(events)

    var plans: [(WorkerPlan, SimulationRandom)] = []
    for worker in 0..<workers {
      var plan = model.plan(life: life, worker: worker, of: workers, clock: clock)
      plan.calls = callsPerWorker
      plan.bulk = bulk
      plans.append((plan, random.split()))
    }
    story.append("life \(life): \(workers) caller(s) × \(callsPerWorker) calls")
    let logs = await withTaskGroup(of: (Int, WorkerLog).self) { group in
      for (plan, workerRandom) in plans {
        group.addTask {
          (plan.worker, await SimulationWorkload.run(plan, store: store, random: workerRandom))
        }
      }
      var logs: [(Int, WorkerLog)] = []
      for await log in group { logs.append(log) }
      return logs.sorted { $0.0 < $1.0 }.map(\.1)
    }
    for (worker, log) in logs.enumerated() {
      violations += log.violations
      violations += model.learn(log.events)
      tally(log)
      if let error = log.error {
        stats.failedCalls += 1
        story.append("  caller \(worker) stopped after \(log.callsMade) calls: \(error.code)")
      }
    }
  }

  /// Counts what a caller did, for the report.
  mutating func tally(_ log: WorkerLog) {
    for event in log.events {
      switch event {
      case .claimed(_, .some), .created(_, .some):
        stats.acknowledgedWrites += 1
      case .uploaded(_, let result):
        stats.uploads += 1
        if result != nil { stats.acknowledgedWrites += 1 }
      case .lifecycle(_, let answer, _):
        stats.lifecycleCalls += 1
        if answer?.outcome == .done { stats.lifecycleDone += 1 }
        if answer == nil { stats.lifecycleInFlight += 1 }
      default:
        break
      }
    }
    stats.snapshotFailures += log.snapshotFailures
  }

  /// Closes a healthy store cleanly, reopens it on the same disk, and checks that the state is
  /// exactly the same (claims in the same order).
  mutating func closeAndReopenChangesNothing(_ store: CouponStore, _ disk: SimulatedFileSystem)
    async
  {
    do {
      let codes = model.trackedCodes
      let before = try await store.observe(codes: codes, time: clock.millis)
      try await store.close()
      let again = try await CouponStore.open(
        directory: Simulation.directory, options: options(disk))
      let after = try await again.observe(codes: codes, time: clock.millis)
      if after != before { violations.append("a clean close and reopen changed the state") }
      if again.recovery.tornTailBytesCut != 0 {
        violations.append("a clean close left a torn tail")
      }
      try await again.close()
    } catch {
      violations.append("clean close and reopen failed: \(error)")
    }
  }

  // MARK: Fail at N

  mutating func runFailAtN() async {
    // A disk with history and a crash, so that recovery has work to do (often a tail to cut).
    var disk = newDisk()
    if let store = await recover(disk) {
      armPowerOff(disk, life: 0, within: 30)
      await runLife(0, store: store)
      disk = await crash(disk, store: store)
      // The crash may or may not have kept what life 0 had in flight, and the trials predict
      // every answer of their one caller exactly: settle the model on what a recovery of this
      // disk finds. A copy is recovered, so that the torn tail stays for the trials to cut.
      let inFlight =
        model.pendingCampaigns.count + model.pendingClaims.count
        + model.books.pendingLifecycle.count + model.books.pendingUploads.count
      if let settled = await recover(disk.copy(seed: 0)) { try? await settled.close() }
      story.append(
        "fail-at-N: \(inFlight) call(s) in flight at the crash settled before the trials")
    }
    let base = disk
    let baseModel = model
    let baseTime = clock.millis
    let workload = random.split()
    let errnos: [Int32] = [EIO, ENOSPC]
    var failAt = 1
    while true {
      if failAt > 600 {
        violations.append("fail-at-N did not finish within 600 operations")
        return
      }
      let trial = base.copy(seed: random.next())
      let errno = random.element(of: errnos)!
      trial.inject(SimulatedFault(operation: failAt, errno: errno))
      lastDisk = trial
      clock.set(baseTime)
      var trialModel = baseModel
      let finished = await failAtNTrial(trial, model: &trialModel, workload: workload)
      if trial.firedFaults.isEmpty {
        if !finished { violations.append("fail-at-\(failAt): the scenario failed without a fault") }
        story.append("fail-at-N: the scenario completed with \(failAt - 1) faults injected")
        return
      }
      stats.faultsInjected += 1
      if trial.firedFaults.contains(where: { $0.thread == Snapshotter.threadName }) {
        stats.faultsInSnapshot += 1
      }
      // A restart without power loss: the page cache survives.
      var restartModel = trialModel
      let restarted = trial.copy(seed: random.next())
      if let store = await recover(restarted, model: &restartModel) {
        do {
          _ = try await store.createCampaign(CampaignSpec(id: "after", name: "after", stock: 1))
        } catch {
          violations.append("fail-at-\(failAt): the restarted store refuses writes: \(error)")
        }
        try? await store.close()
      }
      // A power loss after the failure: only synced data survives.
      var crashModel = trialModel
      let policy: CrashPolicy = random.chance(0.5) ? .dropUnsynced : .orderedWriteback
      let image = trial.crash(policy: policy, random: &random)
      stats.crashes += 1
      if let store = await recover(image, model: &crashModel) { try? await store.close() }
      if !violations.isEmpty {
        story.append("fail-at-\(failAt): \(trial.firedFaults.map(\.description))")
        return
      }
      failAt += 1
    }
  }

  /// Recovers `disk` (which has a fault armed), runs the fixed workload, and checks fail-stop.
  /// Returns whether everything ran without an error.
  mutating func failAtNTrial(
    _ disk: SimulatedFileSystem, model: inout SimulationModel, workload: SimulationRandom
  ) async -> Bool {
    let store: CouponStore
    do {
      store = try await CouponStore.open(directory: Simulation.directory, options: options(disk))
    } catch {
      // An I/O fault must surface as an I/O error: never as corruption, which would send the
      // operator to restore a backup for a disk hiccup.
      if disk.firedFaults.isEmpty || error.code != .io {
        violations.append("open failed with \(error) (faults: \(disk.firedFaults))")
      }
      return false
    }
    var plan = model.plan(life: 1, worker: 0, of: 1, clock: clock)
    plan.calls = callsPerWorker
    plan.predictor = nil
    plan.retriable = []
    let log = await SimulationWorkload.run(plan, store: store, random: workload)
    tally(log)
    violations += log.violations
    violations += model.learn(log.events)
    if let error = log.error {
      if disk.firedFaults.isEmpty {
        violations.append("a call failed without a fault: \(error)")
      }
      // Fail-stop: every later call fails too.
      for call in 0..<2 {
        do {
          if call == 0 {
            _ = try await store.claim(campaign: "any", user: "late")
          } else {
            _ = try await store.createCampaign(CampaignSpec(name: "late", stock: 1))
          }
          violations.append("a call after the failure (\(error.code)) succeeded: not fail-stop")
        } catch {
          if ![.io, .stopped, .closed].contains(error.code) {
            violations.append("a call after the failure threw \(error)")
          }
        }
      }
    }
    var closeError: CouponStoreError?
    do {
      try await store.close()
    } catch {
      closeError = error
      if disk.firedFaults.isEmpty { violations.append("close failed without a fault: \(error)") }
    }
    // A fault in the background snapshotter (perhaps while closing) need not stop the store: the
    // log holds everything. It is reported to a caller of snapshot() or in statistics(), or not
    // at all if no one asks.
    let snapshotFault = disk.firedFaults.contains { $0.thread == Snapshotter.threadName }
    if log.error == nil && closeError == nil && !snapshotFault, let fault = disk.firedFaults.first {
      violations.append(
        "\(fault) (thread \(fault.thread ?? "unnamed")) fired, but no call reported an error: it was "
          + "swallowed")
      story += disk.recentOperations.map { "  trial: " + $0 }
    }
    return log.error == nil
  }

  // MARK: Bit flips

  mutating func runBitFlip() async {
    var disk = newDisk()
    for life in 0..<lives {
      guard let store = await recover(disk) else { return }
      armPowerOff(disk, life: life, within: workers * callsPerWorker * 2 + 6)
      await runLife(life, store: store)
      disk = await crash(disk, store: store)
    }
    // A latent sector error in what was synced before the crash: acknowledged, durable data,
    // anywhere in the log, the last segment (ahead of its torn tail) included.
    let synced = (disk.crashReport?.syncedBytes ?? [:]).filter {
      ($0.key.hasPrefix(Simulation.directory + "/log-")
        || $0.key.hasPrefix(Simulation.directory + "/snapshot-")) && $0.value > 0
    }.sorted { $0.key < $1.key }
    let total = synced.reduce(0) { $0 + $1.value }
    guard total > 0 else { return }
    var position = random.below(total)
    var flip: BitFlip?
    for (path, bytes) in synced {
      if position < bytes {
        flip = BitFlip(path: path, offset: position, bit: random.below(8))
        break
      }
      position -= bytes
    }
    disk.flip(flip!)
    stats.bitFlips += 1
    if flip!.path.contains("/snapshot-") { stats.snapshotFlips += 1 }
    story.append("flipped \(flip!)")
    if let store = await recover(disk, flip: flip) { try? await store.close() }
  }
}
