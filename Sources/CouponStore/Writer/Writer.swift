// The single serialized writer and its syncer.
//
//   callers (any task) ──enqueue──▶ [request queue] ──▶ writer thread: decide, log, apply,
//                                                        one pwrite per batch
//                                                               │ submit(completions)
//                                                               ▼
//                                   [GroupCommit, under one lock] ──sync──▶ syncer thread:
//                                                                           fdatasync, resume callers
//
// Two dedicated threads, not tasks on the cooperative pool, because both block in system calls
// (`pwrite`, `fdatasync`) and a blocked pool thread would starve every other task of the
// process. The writer never waits for a sync: while one `fdatasync` is in flight it keeps
// deciding and writing, and the next sync covers all of it. A lone caller therefore pays one
// write and one sync, and ten thousand callers share a sync between hundreds of them.
//
// Wake-ups use a mutex-protected flag plus a semaphore, not a condition variable, because Swift's
// `Mutex` has no condition and the flag makes sure a sleeper is signalled exactly once.

import CouponLog
import Dispatch
import Foundation
import Synchronization

/// The writer thread, the syncer thread, and the queues between callers and them.
///
/// `@unchecked Sendable`: `engine` and `logBytesSinceSnapshot` are touched only by the writer
/// thread (and by `init` before the thread starts); everything shared is behind `queue` or `commit`
/// (both `Mutex`) or is immutable.
final class Writer: @unchecked Sendable {
  struct Limits: Sendable {
    var batchRecordsMax: Int
    var batchBytesMax: Int
    var synchronous: Bool
    /// Log bytes after which a snapshot is started automatically; 0: never.
    var snapshotLogBytes: Int = 0
    /// !!! CANARY — BREAKS DURABILITY — TESTS ONLY !!! Acknowledges every write as soon as its
    /// batch is written, before the `fdatasync` that makes it durable. It exists to prove that
    /// the crash simulator catches a store that acknowledges too early (SimulationTests); it is
    /// read from the task-local ``Writer/canaryAcknowledgeBeforeSync`` when a store is opened,
    /// which only a `@testable import` can set. Never set it anywhere else.
    var acknowledgeBeforeSync = Writer.canaryAcknowledgeBeforeSync
  }

  /// !!! CANARY — BREAKS DURABILITY — TESTS ONLY !!! See ``Limits/acknowledgeBeforeSync``.
  /// Task-local, not a global, so that a canary test cannot break the stores of the tests that
  /// run beside it: only stores opened inside `$canaryAcknowledgeBeforeSync.withValue(true)`
  /// are broken.
  @TaskLocal static var canaryAcknowledgeBeforeSync = false

  private struct Queue {
    var pending: [Envelope] = []
    var spare: [Envelope] = []
    /// Segment detachments the snapshotter asked for (handled before the next batch).
    var removals: [SegmentRemoval] = []
    var writerSleeping = false
    var closed = false
  }

  private struct Commit {
    var machine: GroupCommit<Completion>
    /// The newest segment written to: syncing it makes every written record durable, because a
    /// segment roll syncs the old segment before the first record goes to the new one.
    var segment: SegmentHandle
    /// Whether the sync in flight was handed to the syncer thread (otherwise the writer is
    /// performing it inline). Exactly one thread performs each sync.
    var syncerOwnsSync = false
    var syncerStopping = false
  }

  private let queue = Mutex(Queue())
  private let commit: Mutex<Commit>
  private let writerWake = DispatchSemaphore(value: 0)
  private let syncerWake = DispatchSemaphore(value: 0)
  private let writerDone = DispatchSemaphore(value: 0)
  private let syncerDone = DispatchSemaphore(value: 0)
  private let limits: Limits
  /// How many callers the last completed sync released (for adaptive group commit).
  private let lastCompletedCount = Atomic<Int>(0)
  /// How long the last sync took, in nanoseconds.
  private let lastSyncNanos = Atomic<UInt64>(0)
  /// Batches written and syncs performed since open (for ``StoreStatistics``).
  private let writes = Atomic<Int>(0)
  private let syncs = Atomic<Int>(0)

  /// Batches written to the log and syncs performed since open.
  var ioCounts: (writes: Int, syncs: Int) {
    (writes.load(ordering: .relaxed), syncs.load(ordering: .relaxed))
  }
  private let clock: @Sendable () -> Date
  private var engine: Engine
  private let snapshotter: Snapshotter
  /// Log bytes written since the last snapshot's roll (or, at open, replayed after the snapshot
  /// recovery started from).
  private var logBytesSinceSnapshot: Int64

  init(
    engine: Engine, limits: Limits, clock: @escaping @Sendable () -> Date,
    snapshotter: Snapshotter, logBytesSinceSnapshot: Int64
  ) {
    self.engine = engine
    self.limits = limits
    self.clock = clock
    self.snapshotter = snapshotter
    self.logBytesSinceSnapshot = logBytesSinceSnapshot
    self.commit = Mutex(
      Commit(
        machine: GroupCommit(durableSequence: engine.lastAppended),
        segment: engine.log.currentSegment))
  }

  /// Starts both threads.
  func start() {
    let writer = Thread { [self] in
      nameKernelThread("cs-writer")
      runWriter()
      writerDone.signal()
    }
    writer.stackSize = 4 << 20
    writer.start()
    let syncer = Thread { [self] in
      nameKernelThread("cs-syncer")
      runSyncer()
      syncerDone.signal()
    }
    syncer.start()
  }

  /// Hands a request to the writer and waits for its reply (released only once durable).
  func submit(_ request: Request) async -> Reply {
    await withUnsafeContinuation { continuation in
      let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
        if queue.closed { return (false, false) }
        queue.pending.append(Envelope(request: request, continuation: continuation))
        guard queue.writerSleeping else { return (true, false) }
        queue.writerSleeping = false
        return (true, true)
      }
      if !accepted { continuation.resume(returning: .failure(.closedError)) }
      if wake { writerWake.signal() }
    }
  }

  /// Waits until both threads have exited (after a `.close` request was processed).
  func join() {
    writerDone.wait()
    syncerDone.wait()
  }

  /// Stops the threads of a store that was released without `close()`: refuses new requests,
  /// lets the writer finish (everything it wrote is synced by the syncer before it exits), and
  /// waits for both threads. A no-op after `close()`.
  func shutdown() {
    let (wasClosed, wake) = queue.withLock { queue -> (Bool, Bool) in
      defer {
        queue.closed = true
        queue.writerSleeping = false
      }
      return (queue.closed, queue.writerSleeping)
    }
    if wasClosed { return }
    if wake { writerWake.signal() }
    join()
  }

  /// The error that stopped the store, if any.
  var failure: (any Error)? { commit.withLock { $0.machine.failure } }

  // MARK: Writer thread

  private func runWriter() {
    var completions: [Completion] = []
    while true {
      let (batch, removals) = takeBatch()
      for removal in removals { remove(removal) }
      if batch.isEmpty {
        if !removals.isEmpty { continue }
        // Nothing at all: only when `shutdown()` closed an idle queue.
        finishClosing()
        return
      }
      if let failure = self.failure {
        // Stopped (fail-stop): decide nothing more, write nothing more.
        let error = Self.stoppedError(failure)
        for envelope in batch {
          envelope.continuation.resume(returning: .failure(error))
        }
        if batch.contains(where: { if case .close = $0.request { true } else { false } }) {
          finishClosing()
          return
        }
        continue
      }
      let now = clock().millis
      var closing = false
      for (position, envelope) in batch.enumerated() {
        if position % ClaimLookahead.window == 0 {
          engine.prepare(
            batch[position..<min(position + ClaimLookahead.window, batch.count)].lazy.map {
              if case .claim(let campaign, let user, _) = $0.request {
                (campaign, user)
              } else {
                nil
              }
            }, startingAt: position, in: .requests)
        }
        if closing {
          // Requests queued behind the close (the queue closes right after this batch).
          envelope.continuation.resume(returning: .failure(.closedError))
          continue
        }
        if case .close = envelope.request {
          closing = true
        }
        if case .snapshot = envelope.request {
          flushAndSubmit(&completions)
          startSnapshot(waiter: envelope.continuation)
          continue
        }
        let reply = engine.handle(envelope.request, now: now, position: position)
        completions.append(Completion(continuation: envelope.continuation, reply: reply))
        if engine.log.bufferedBytes >= limits.batchBytesMax {
          flushAndSubmit(&completions)
        }
      }
      flushAndSubmit(&completions)
      if closing {
        finishClosing()
        return
      }
      if limits.snapshotLogBytes > 0, logBytesSinceSnapshot >= Int64(limits.snapshotLogBytes),
        snapshotter.isIdle
      {
        startSnapshot(waiter: nil)
      }
    }
  }

  // MARK: Snapshots

  /// Seals the log written so far (rolls the segment; the batch was flushed) and hands its last
  /// sequence to the snapshotter, which builds the snapshot on its own thread. O(1) here.
  ///
  /// Durability: the roll `fdatasync`s the segment, so every record through the boundary is
  /// durable before the snapshotter reads it. A failed roll stops the store like any failed log
  /// sync.
  private func startSnapshot(waiter: UnsafeContinuation<Reply, Never>?) {
    if let failure = self.failure {
      waiter?.resume(returning: .failure(Self.stoppedError(failure)))
      return
    }
    do {
      try engine.log.rollSegment()
    } catch {
      let storeError = CouponStoreError.io(error, while: "sealing the log for a snapshot")
      let actions = commit.withLock { $0.machine.stop(storeError) }
      perform(actions)
      waiter?.resume(returning: .failure(Self.stoppedError(storeError)))
      return
    }
    logBytesSinceSnapshot = 0
    snapshotter.enqueue(boundary: engine.lastAppended, waiter: waiter)
  }

  /// Asks the writer thread to take the log segments whose records all lie at or below
  /// `sequence` off the log's list, and waits for their paths, oldest first; the caller (the
  /// snapshotter thread, once two durable snapshots cover them) deletes them, so that the writer
  /// thread never waits for an unlink. Returns `nil` if the writer is gone.
  func detachSegments(coveredThrough sequence: UInt64) -> [String]? {
    let removal = SegmentRemoval(through: sequence)
    let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
      if queue.closed { return (false, false) }
      queue.removals.append(removal)
      guard queue.writerSleeping else { return (true, false) }
      queue.writerSleeping = false
      return (true, true)
    }
    guard accepted else { return nil }
    if wake { writerWake.signal() }
    removal.done.wait()
    return removal.paths
  }

  /// Detaches the segments a removal asks for (O(segments) bookkeeping, no I/O).
  private func remove(_ removal: SegmentRemoval) {
    removal.finish(engine.log.detachSegments(coveredThrough: removal.through))
  }

  /// Refuses everything still queued and tells the syncer to exit once idle.
  private func finishClosing() {
    let (leftovers, removals) = queue.withLock { queue -> ([Envelope], [SegmentRemoval]) in
      queue.closed = true
      defer {
        queue.pending.removeAll()
        queue.removals.removeAll()
      }
      return (queue.pending, queue.removals)
    }
    for envelope in leftovers {
      envelope.continuation.resume(returning: .failure(.closedError))
    }
    for removal in removals { removal.finish(nil) }
    commit.withLock { $0.syncerStopping = true }
    syncerWake.signal()
  }

  /// Takes up to `batchRecordsMax` requests and the segment detachments asked for, sleeping
  /// while there is neither, then gathers stragglers if the batch would start a sync much smaller
  /// than the last one. Returns nothing at all only when the queue was closed while idle.
  private func takeBatch() -> ([Envelope], [SegmentRemoval]) {
    var (taken, removals) = takeAvailable(waiting: true)
    if !taken.isEmpty { gatherStragglers(into: &taken, removals: &removals) }
    return (taken, removals)
  }

  /// The requests queued now (at most `batchRecordsMax`) and the detachments asked for; with
  /// `waiting`, sleeps until there is one or the other (or the timeout passes, or the queue is
  /// closed).
  private func takeAvailable(waiting: Bool, timeout: DispatchTime = .distantFuture) -> (
    [Envelope], [SegmentRemoval]
  ) {
    while true {
      let taken = queue.withLock { queue -> ([Envelope], [SegmentRemoval])? in
        let removals = queue.removals
        queue.removals.removeAll()
        if queue.pending.isEmpty {
          if !removals.isEmpty { return ([], removals) }
          queue.writerSleeping = true
          return nil
        }
        if queue.pending.count <= limits.batchRecordsMax {
          var taken = queue.spare
          swap(&taken, &queue.pending)
          queue.spare = []
          return (taken, removals)
        }
        let taken = Array(queue.pending.prefix(limits.batchRecordsMax))
        queue.pending.removeFirst(limits.batchRecordsMax)
        return (taken, removals)
      }
      if let taken { return taken }
      if !waiting || queue.withLock({ $0.closed }) { return ([], []) }
      if writerWake.wait(timeout: timeout) == .timedOut { return ([], []) }
    }
  }

  /// Adaptive group commit. When a sync completes, its callers come back within microseconds
  /// with their next requests; the first few would otherwise start a sync of their own and the
  /// rest wait a whole sync for the next one, so batches alternate small and large and half the
  /// syncs are wasted. If this batch would start a sync (none in flight) and holds fewer than
  /// half the callers the last sync completed, wait for stragglers until it holds three
  /// quarters of them, bounded by half the last sync's duration and by `gatherNanosMax`. A lone caller (the last sync completed one
  /// request) never waits.
  private func gatherStragglers(
    into taken: inout [Envelope], removals: inout [SegmentRemoval]
  ) {
    let expected = lastCompletedCount.load(ordering: .relaxed)
    guard taken.count * 2 < expected, taken.count < limits.batchRecordsMax else { return }
    guard commit.withLock({ $0.machine.syncingThrough == nil }) else { return }
    let delay = min(lastSyncNanos.load(ordering: .relaxed) / 2, Self.gatherNanosMax)
    let deadline = DispatchTime(uptimeNanoseconds: DispatchTime.now().uptimeNanoseconds + delay)
    while taken.count * 4 < expected * 3, taken.count < limits.batchRecordsMax,
      DispatchTime.now() < deadline
    {
      let (more, moreRemovals) = takeAvailable(waiting: true, timeout: deadline)
      removals += moreRemovals
      if more.isEmpty { break }
      taken += more
    }
  }

  /// Upper bound of the straggler wait (200 µs).
  static let gatherNanosMax: UInt64 = 200_000

  /// Writes the batch to the OS and hands its completions to group commit.
  ///
  /// Durability: after this returns the batch is in the OS page cache, not on disk; its callers
  /// are resumed by the syncer after the `fdatasync` that covers it.
  private func flushAndSubmit(_ completions: inout [Completion]) {
    let actions: [GroupCommit<Completion>.Action]
    do {
      let bytes = engine.log.bufferedBytes
      let flushed = try engine.log.flush()
      if flushed != nil { writes.add(1, ordering: .relaxed) }
      logBytesSinceSnapshot += Int64(bytes)
      let through = engine.lastAppended
      let segment = flushed?.segment
      let durable: UInt64
      (actions, durable) = commit.withLock { commit in
        if let segment { commit.segment = segment }
        // !!! CANARY (tests only): waiting for sequence 0 completes the batch before its sync.
        let waitFor = limits.acknowledgeBeforeSync ? 0 : through
        let actions = commit.machine.submit(
          completions, through: waitFor, writtenThrough: through)
        return (actions, commit.machine.durableSequence)
      }
      engine.log.durableSequence = durable
    } catch {
      let storeError = CouponStoreError.io(error, while: "writing the log")
      actions = commit.withLock { commit in
        var actions = commit.machine.stop(storeError)
        actions += commit.machine.submit(
          completions, through: commit.machine.writtenSequence,
          writtenThrough: commit.machine.writtenSequence)
        return actions
      }
    }
    completions.removeAll(keepingCapacity: true)
    perform(actions)
  }

  /// Performs the sync just started, on the writer thread.
  private func syncInline() {
    perform(finishSync(commit.withLock { $0.segment }, bySyncer: false))
  }

  /// Syncs `segment` and reports the outcome to group commit.
  ///
  /// Durability point of every write path: this `fdatasync`. Callers are resumed only after it
  /// returned success. A failure is never retried (fail-stop).
  private func finishSync(_ segment: SegmentHandle, bySyncer: Bool) -> [GroupCommit<Completion>
    .Action]
  {
    var syncError: CouponStoreError?
    if limits.synchronous {
      let started = DispatchTime.now().uptimeNanoseconds
      do {
        try segment.syncData()
      } catch {
        syncError = CouponStoreError.io(error, while: "syncing the log")
      }
      lastSyncNanos.store(DispatchTime.now().uptimeNanoseconds - started, ordering: .relaxed)
      syncs.add(1, ordering: .relaxed)
    }
    return commit.withLock { commit in
      let actions =
        syncError.map { commit.machine.syncFailed($0) } ?? commit.machine.syncSucceeded()
      // A sync started by the syncer's own success report is the syncer's to perform.
      commit.syncerOwnsSync = bySyncer && commit.machine.syncingThrough != nil
      return actions
    }
  }

  // MARK: Syncer thread

  private func runSyncer() {
    while true {
      syncerWake.wait()
      while true {
        let (segment, stopping, owned) = commit.withLock { commit in
          (commit.segment, commit.syncerStopping, commit.syncerOwnsSync)
        }
        if !owned {
          if stopping { return }
          break
        }
        let actions = finishSync(segment, bySyncer: true)
        perform(actions, fromSyncer: true)
      }
    }
  }

  // MARK: Actions

  private func perform(_ actions: [GroupCommit<Completion>.Action], fromSyncer: Bool = false) {
    for action in actions {
      switch action {
      case .sync:
        // The syncer loops while a sync is in flight, so it only needs waking from the writer.
        // A writer with nothing queued syncs inline instead: a lone caller then pays one thread
        // hop less, and the writer had nothing else to do during that sync anyway.
        if !fromSyncer {
          if queue.withLock({ $0.pending.isEmpty }) {
            syncInline()
          } else {
            commit.withLock { $0.syncerOwnsSync = true }
            syncerWake.signal()
          }
        }
      case .complete(let completions):
        lastCompletedCount.store(completions.count, ordering: .relaxed)
        for completion in completions {
          completion.continuation.resume(returning: completion.reply)
        }
      case .fail(let completions, let error):
        let storeError = Self.stoppedError(error)
        for completion in completions {
          completion.continuation.resume(returning: .failure(storeError))
        }
      }
    }
  }

  static func stoppedError(_ error: any Error) -> CouponStoreError {
    guard var storeError = error as? CouponStoreError else {
      return CouponStoreError(code: .stopped, message: "the store stopped: \(error)")
    }
    if storeError.code == .io {
      storeError.message =
        "the store stopped after an I/O failure and accepts no more requests; reopen it to "
        + "recover from disk. Cause: " + storeError.message
    }
    return storeError
  }
}

/// Segments the snapshotter thread asks the writer thread to detach from the log, waiting on
/// `done` for their paths.
///
/// `@unchecked Sendable`: `paths` is written once by the writer thread before it signals `done`,
/// and read by the snapshotter only after `done.wait()` returned.
final class SegmentRemoval: @unchecked Sendable {
  let through: UInt64
  let done = DispatchSemaphore(value: 0)
  /// The detached segments, oldest first; `nil` if the writer closed first.
  private(set) var paths: [String]?

  init(through: UInt64) {
    self.through = through
  }

  func finish(_ paths: [String]?) {
    self.paths = paths
    done.signal()
  }
}
