// The snapshotter: writes snapshots in the background, from its own copy of the state, so that
// claims keep flowing while a snapshot of millions of coupons is encoded and written.
//
//   writer thread                              snapshotter thread (low priority)
//   ─────────────                              ─────────────────────────────────
//   log bytes since last snapshot ≥ threshold,
//   or snapshot() asked:
//     flush the batch, roll the segment  ──B──▶ load the previous snapshot (or start empty)
//     (one fdatasync, as any roll does),        replay the sealed segments up to B onto it
//     go on deciding claims                     write snapshot-B (tmp, fdatasync, rename,
//                                               directory fsync)
//                                               delete all snapshots but B and its base
//   detach the segments the base covers ◀───── ask the writer (it owns the log's segment list),
//   from the log's list (no I/O)               then delete them here: an unlink of a 64 MiB
//                                              file can take tens of milliseconds
//
// The mechanism is a background fold: the writer's only part is the roll, O(1) whatever the
// state's size. Rejected: a copy-on-write image of the writer's state handed to this thread. It
// is free to take, but the first mutation of each large array after it (the coupons, the code
// and user tables) copies the whole array on the writer thread: about a gigabyte for ten million
// coupons, hundreds of milliseconds of stalled claims at every snapshot (not measured: rejected
// on that arithmetic), unless the state were rebuilt from chunked copy-on-write arrays.
//
// Memory cost: while a snapshot is being built, this thread holds a second complete state
// (about as large as the live one, ~100 bytes per coupon). It is dropped when the snapshot is
// written, and rebuilt from the previous snapshot file next time, so between snapshots the store
// holds one state only. CPU cost: one snapshot load, one replay of `snapshotLogBytes` of log, and
// one encode per snapshot, on a thread whose scheduling priority is lowered (nice 10) so that the
// writer and the callers' tasks win the CPU when it is contended.
//
// Kept files: the newest snapshot and the one it was folded from (its base), so that a damaged
// newest snapshot falls back to the base plus the log after it. Log segments are deleted only
// when both cover them, i.e. through the base's sequence. The empty state before the first
// snapshot counts as a base at sequence 0: the first snapshot deletes no log.
//
// Failures: no acknowledgement ever depends on a snapshot, so a snapshot that fails (a write, an
// fdatasync, the rename, the directory sync) does not stop the store, unlike a failure of the log.
// The attempt is abandoned, its temporary file removed, the error reported (to `snapshot()`'s
// caller and in `statistics()`), and nothing is deleted for it: the log still holds every record
// the snapshot would have covered. A failed fdatasync is never retried on the same file (its pages
// may be gone); the next attempt writes a new file. The roll, which syncs the log, is fail-stop
// like every other log sync.
//
// Closing: `stop()` abandons a snapshot at its next write of the file (the temporary file is
// removed); a fold in progress (loading the base, replaying) runs to its end first.

import CouponLog
import Dispatch
import Foundation
import Synchronization

/// Writes snapshots on its own thread; see the essay above.
///
/// `@unchecked Sendable`: the mutable state is in `control` (a `Mutex`); `writer` is set once
/// before ``start()`` and only read afterwards; everything else is immutable.
final class Snapshotter: @unchecked Sendable {
  /// A snapshot to take: through `boundary`, for these callers (none for an automatic one).
  private struct Job {
    var boundary: UInt64
    var waiters: [UnsafeContinuation<Reply, Never>]
  }

  private struct Control {
    var queued: Job?
    var running = false
    var stopping = false
    /// The newest durable snapshot: the base of the next fold.
    var latest: SnapshotEntry?
    var written = 0
    var lastError: CouponStoreError?

    /// Whether a snapshot is being written or waits to be.
    var isBusy: Bool { running || queued != nil }
  }

  let directory: String
  let fileSystem: any FileSystem
  let requestWindow: Int
  let clock: @Sendable () -> Date
  /// The store's options for replaying the sealed log (no progress reports, never salvage).
  let replayOptions: CouponStore.Options
  /// The writer whose segments covered snapshots free. Set once, before ``start()``.
  weak var writer: Writer?

  private let control: Mutex<Control>
  private let wake = DispatchSemaphore(value: 0)
  private let done = DispatchSemaphore(value: 0)
  private let started = Atomic<Bool>(false)

  init(directory: String, options: CouponStore.Options, latest: SnapshotEntry?) {
    self.directory = directory
    self.fileSystem = options.fileSystem
    self.requestWindow = options.requestIDWindow
    self.clock = options.clock
    var replayOptions = options
    replayOptions.openProgress = nil
    replayOptions.salvage = false
    self.replayOptions = replayOptions
    self.control = Mutex(Control(latest: latest))
  }

  /// The thread's name for the kernel (at most 15 bytes): what `top -H` and gdb show, and how
  /// the crash simulator tells the snapshotter's system calls from the writer's.
  static let threadName = "cs-snapshotter"

  /// Starts the thread.
  func start() {
    started.store(true, ordering: .releasing)
    let thread = Thread { [self] in
      nameKernelThread(Self.threadName)
      lowerThreadPriority()
      run()
      done.signal()
    }
    thread.stackSize = 4 << 20
    thread.start()
  }

  /// Whether no snapshot is being written or waiting to be. The writer thread asks this, so it
  /// reads one flag under the lock and copies nothing else (unlike ``status``).
  var isIdle: Bool { control.withLock { !$0.isBusy } }

  /// What the statistics report: the newest snapshot's sequence, snapshots written since open,
  /// whether one is being written or waits to be, and the last failure.
  var status: (sequence: UInt64, written: Int, busy: Bool, lastError: CouponStoreError?) {
    control.withLock {
      ($0.latest?.sequence ?? 0, $0.written, $0.isBusy, $0.lastError)
    }
  }

  /// Queues a snapshot through `boundary` (every record through it is durable and in sealed
  /// segments). Jobs queued while one runs merge into one, through the highest boundary.
  func enqueue(boundary: UInt64, waiter: UnsafeContinuation<Reply, Never>?) {
    let accepted = control.withLock { control -> Bool in
      if control.stopping { return false }
      var job = control.queued ?? Job(boundary: boundary, waiters: [])
      job.boundary = max(job.boundary, boundary)
      if let waiter { job.waiters.append(waiter) }
      control.queued = job
      return true
    }
    if accepted {
      wake.signal()
    } else {
      waiter?.resume(returning: .failure(.closedError))
    }
  }

  /// Abandons any snapshot in progress (its temporary file is removed), fails queued callers
  /// with `closed`, and waits for the thread to exit.
  func stop() {
    control.withLock { $0.stopping = true }
    guard started.load(ordering: .acquiring) else { return }
    wake.signal()
    done.wait()
  }

  // MARK: The thread

  private func run() {
    while true {
      wake.wait()
      while true {
        let next = control.withLock { control -> (job: Job?, stopping: Bool) in
          if control.stopping { return (nil, true) }
          guard let job = control.queued else { return (nil, false) }
          control.queued = nil
          control.running = true
          return (job, false)
        }
        if next.stopping {
          let leftover = control.withLock { control -> Job? in
            defer { control.queued = nil }
            return control.queued
          }
          for waiter in leftover?.waiters ?? [] { waiter.resume(returning: .failure(.closedError)) }
          return
        }
        guard let job = next.job else { break }
        let reply = take(job)
        control.withLock { $0.running = false }
        for waiter in job.waiters { waiter.resume(returning: reply) }
      }
    }
  }

  private var isStopping: Bool { control.withLock { $0.stopping } }

  /// Takes one snapshot and retires what it makes redundant.
  private func take(_ job: Job) -> Reply {
    let base = control.withLock { $0.latest }
    if job.boundary <= (base?.sequence ?? 0) {
      // Nothing was logged since the last snapshot: that one is the answer.
      return .snapshot(info(base))
    }
    do {
      var state: StoreState
      if let base {
        do {
          state = try StoreState.loadSnapshot(
            path: base.path, fileSystem: fileSystem, requestWindow: requestWindow)
        } catch .damaged(let damage) {
          throw CouponStoreError(
            code: .corruption,
            message: "the previous snapshot, which the next one is built on, is damaged "
              + "(\(damage.reason)); restart the store to fall back to an older one",
            path: damage.path, offset: damage.offset)
        } catch .io(let error) {
          throw CouponStoreError.io(error, while: "reading the previous snapshot")
        }
      } else {
        state = StoreState(requestWindow: requestWindow)
      }
      try fold(&state, through: job.boundary)
      let written: WrittenSnapshot
      do {
        written = try state.writeSnapshot(
          directory: directory, fileSystem: fileSystem, createdAtMillis: clock().millis,
          isCancelled: { [self] in isStopping })
      } catch let error as SystemCallError {
        throw CouponStoreError.io(error, while: "writing a snapshot")
      } catch is SnapshotCancelled {
        throw CouponStoreError.closedError
      }
      state = StoreState(requestWindow: 0)  // the second copy is released before the cleanup
      let entry = SnapshotEntry(sequence: written.sequence, path: written.path)
      control.withLock {
        $0.latest = entry
        $0.written += 1
      }
      try retireOlderSnapshots(keeping: [entry.sequence, base?.sequence ?? 0])
      if let base, let paths = writer?.detachSegments(coveredThrough: base.sequence) {
        try removeSegments(paths)
      }
      return .snapshot(
        CouponStore.SnapshotInfo(
          path: written.path, sequence: written.sequence, bytes: written.bytes))
    } catch let error as CouponStoreError {
      if error.code != .closed { control.withLock { $0.lastError = error } }
      return .failure(error)
    } catch {
      let storeError = CouponStoreError(code: .io, message: "snapshot failed: \(error)")
      control.withLock { $0.lastError = storeError }
      return .failure(storeError)
    }
  }

  /// Replays the sealed log records after `state.lastSequence` through `boundary` onto `state`.
  private func fold(_ state: inout StoreState, through boundary: UInt64) throws(CouponStoreError) {
    var replayedBytes: Int64 = 0
    let report = try CouponStore.replayLog(
      directory: directory, options: replayOptions, readOnly: true, throughSequence: boundary,
      into: &state, replayedBytes: &replayedBytes)
    guard report.lastSequence == boundary, state.lastSequence == boundary else {
      throw CouponStoreError(
        code: .corruption,
        message: "the sealed log ends at sequence \(report.lastSequence), before the snapshot "
          + "boundary \(boundary)", path: directory)
    }
  }

  /// Deletes every snapshot file but the two kept ones, then syncs the directory.
  private func retireOlderSnapshots(keeping kept: Set<UInt64>) throws(CouponStoreError) {
    let (snapshots, _) = try CouponStore.listSnapshots(directory: directory, fileSystem: fileSystem)
    let retired = snapshots.filter { !kept.contains($0.sequence) }
    guard !retired.isEmpty else { return }
    do {
      for snapshot in retired { try fileSystem.removeFile(snapshot.path) }
      // Durability point: the deletions are durable once the directory is synced.
      try fileSystem.syncDirectory(directory)
    } catch {
      throw .io(error, while: "deleting an older snapshot")
    }
  }

  /// Deletes log segments the writer detached (covered by both kept snapshots), oldest first, so
  /// that a crash part-way leaves no gap, then syncs the directory. A failure leaves segments
  /// behind, which costs only disk space: the next open lists and verifies them again.
  private func removeSegments(_ paths: [String]) throws(CouponStoreError) {
    guard !paths.isEmpty else { return }
    do {
      for path in paths { try fileSystem.removeFile(path) }
      // Durability point: the deletions are durable once the directory is synced.
      try fileSystem.syncDirectory(directory)
    } catch {
      throw .io(error, while: "deleting log segments covered by snapshots")
    }
  }

  private func info(_ entry: SnapshotEntry?) -> CouponStore.SnapshotInfo {
    guard let entry else { return CouponStore.SnapshotInfo(path: "", sequence: 0, bytes: 0) }
    let bytes: Int64
    do {
      let fd = try fileSystem.openFile(entry.path, options: .readOnly)
      defer { fileSystem.close(fd) }
      bytes = try fileSystem.size(of: fd)
    } catch {
      bytes = 0
    }
    return CouponStore.SnapshotInfo(path: entry.path, sequence: entry.sequence, bytes: bytes)
  }
}

/// Lowers the calling thread's scheduling priority (nice 10), so that the writer thread and the
/// callers' tasks win the CPU when the machine is busy. On Linux the nice value belongs to the
/// thread, and `who == 0` names the calling thread. Best effort: errors are ignored.
private func lowerThreadPriority() {
  #if os(Linux)
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
  #endif
}

#if canImport(Glibc)
  import Glibc
#endif
