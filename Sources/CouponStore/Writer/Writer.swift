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
/// `@unchecked Sendable`: `engine` is touched only by the writer thread (and by `init` before the
/// thread starts); everything shared is behind `queue` or `commit` (both `Mutex`) or is immutable.
final class Writer: @unchecked Sendable {
  struct Limits: Sendable {
    var batchRecordsMax: Int
    var batchBytesMax: Int
    var synchronous: Bool
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
    var writerSleeping = false
    var closed = false
  }

  private struct Commit {
    var machine: GroupCommit<Completion>
    /// The newest segment written to: syncing it makes every written record durable, because a
    /// segment roll syncs the old segment before the first record goes to the new one.
    var segment: SegmentHandle
    var syncerStopping = false
  }

  private let queue = Mutex(Queue())
  private let commit: Mutex<Commit>
  private let writerWake = DispatchSemaphore(value: 0)
  private let syncerWake = DispatchSemaphore(value: 0)
  private let writerDone = DispatchSemaphore(value: 0)
  private let syncerDone = DispatchSemaphore(value: 0)
  private let limits: Limits
  private let clock: @Sendable () -> Date
  private var engine: Engine

  init(engine: Engine, limits: Limits, clock: @escaping @Sendable () -> Date) {
    self.engine = engine
    self.limits = limits
    self.clock = clock
    self.commit = Mutex(
      Commit(
        machine: GroupCommit(durableSequence: engine.lastAppended),
        segment: engine.log.currentSegment))
  }

  /// Starts both threads.
  func start() {
    let writer = Thread { [self] in
      runWriter()
      writerDone.signal()
    }
    writer.name = "couponstore.writer"
    writer.stackSize = 4 << 20
    writer.start()
    let syncer = Thread { [self] in
      runSyncer()
      syncerDone.signal()
    }
    syncer.name = "couponstore.syncer"
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

  /// The error that stopped the store, if any.
  var failure: (any Error)? { commit.withLock { $0.machine.failure } }

  // MARK: Writer thread

  private func runWriter() {
    var completions: [Completion] = []
    while true {
      let batch = takeBatch()
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
      for envelope in batch {
        if closing {
          // Requests queued behind the close (the queue closes right after this batch).
          envelope.continuation.resume(returning: .failure(.closedError))
          continue
        }
        if case .close = envelope.request {
          closing = true
        }
        let reply = engine.handle(envelope.request, now: now)
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
    }
  }

  /// Refuses everything still queued and tells the syncer to exit once idle.
  private func finishClosing() {
    let leftovers = queue.withLock { queue -> [Envelope] in
      queue.closed = true
      defer { queue.pending.removeAll() }
      return queue.pending
    }
    for envelope in leftovers {
      envelope.continuation.resume(returning: .failure(.closedError))
    }
    commit.withLock { $0.syncerStopping = true }
    syncerWake.signal()
  }

  /// Takes up to `batchRecordsMax` requests, sleeping while there are none.
  private func takeBatch() -> [Envelope] {
    while true {
      let taken = queue.withLock { queue -> [Envelope]? in
        if queue.pending.isEmpty {
          queue.writerSleeping = true
          return nil
        }
        if queue.pending.count <= limits.batchRecordsMax {
          var taken = queue.spare
          swap(&taken, &queue.pending)
          queue.spare = []
          return taken
        }
        let taken = Array(queue.pending.prefix(limits.batchRecordsMax))
        queue.pending.removeFirst(limits.batchRecordsMax)
        return taken
      }
      if let taken { return taken }
      writerWake.wait()
    }
  }

  /// Writes the batch to the OS and hands its completions to group commit.
  ///
  /// Durability: after this returns the batch is in the OS page cache, not on disk; its callers
  /// are resumed by the syncer after the `fdatasync` that covers it.
  private func flushAndSubmit(_ completions: inout [Completion]) {
    let actions: [GroupCommit<Completion>.Action]
    do {
      let flushed = try engine.log.flush()
      let through = engine.lastAppended
      let segment = flushed?.segment
      actions = commit.withLock { commit in
        if let segment { commit.segment = segment }
        // !!! CANARY (tests only): waiting for sequence 0 completes the batch before its sync.
        let waitFor = limits.acknowledgeBeforeSync ? 0 : through
        return commit.machine.submit(completions, through: waitFor, writtenThrough: through)
      }
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

  // MARK: Syncer thread

  private func runSyncer() {
    while true {
      syncerWake.wait()
      while true {
        let (segment, stopping, syncing) = commit.withLock { commit in
          (commit.segment, commit.syncerStopping, commit.machine.syncingThrough != nil)
        }
        if !syncing {
          if stopping { return }
          break
        }
        // Durability point of every write path: this fdatasync. Its callers are resumed below,
        // only after it returned success. A failure is never retried (fail-stop).
        var syncError: CouponStoreError?
        if limits.synchronous {
          do {
            try segment.syncData()
          } catch {
            syncError = CouponStoreError.io(error, while: "syncing the log")
          }
        }
        let actions = commit.withLock { commit in
          if let syncError { return commit.machine.syncFailed(syncError) }
          return commit.machine.syncSucceeded()
        }
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
        if !fromSyncer { syncerWake.signal() }
      case .complete(let completions):
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
