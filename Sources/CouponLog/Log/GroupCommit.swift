// Group commit as a pure state machine.
//
// The engine has two threads around the log: the writer thread decides requests, encodes their
// events and hands the frames to the OS with one `pwrite` per batch; the syncer thread makes what
// was written durable with one `fdatasync` and then resumes every caller whose events that sync
// covered. While one sync is in flight the writer keeps deciding and writing, so the next sync
// covers everything that piled up meanwhile: batching is automatic and never waits on a timer, and
// a lone caller pays about one `fdatasync`.
//
// This type holds only the bookkeeping of that protocol (what is written, what is durable, who
// waits for what, whether a sync is in flight, whether the store has failed) and answers every
// event with the actions to perform. It does no I/O and owns no thread, so its logic is tested
// without files or threads; the engine keeps it behind one lock shared by both threads.

/// The bookkeeping of group commit: which waiters may be completed once which sequence number is
/// durable, and when a sync must be started.
///
/// `Waiter` is whatever the engine resumes when a batch is durable (a continuation and its reply).
/// Sequence numbers are the log's record sequence numbers; `0` means "nothing".
public struct GroupCommit<Waiter> {
  /// What the caller must do after feeding the machine an event.
  public enum Action {
    /// Start one `fdatasync` that makes every record through `through` durable, then report
    /// ``GroupCommit/syncSucceeded()`` or ``GroupCommit/syncFailed(_:)``.
    case sync(through: UInt64)
    /// Resume these waiters with their replies: everything they depend on is durable.
    case complete([Waiter])
    /// Fail these waiters with the error: the store has stopped (fail-stop).
    case fail([Waiter], any Error)
  }

  /// The highest sequence number handed to the operating system (written, maybe not durable).
  public private(set) var writtenSequence: UInt64
  /// The highest sequence number known to be durable.
  public private(set) var durableSequence: UInt64
  /// The target of the sync in flight, if any. At most one sync is in flight at a time.
  public private(set) var syncingThrough: UInt64?
  /// The error that stopped the store, if any. Once set, it never clears: every later waiter is
  /// failed with it (LevelDB's background error).
  public private(set) var failure: (any Error)?

  /// Waiter groups in submission order; each group completes when `durableSequence >= through`.
  /// Groups are submitted with non-decreasing `through`, so completion pops from the front.
  private var groups: [(through: UInt64, waiters: [Waiter])] = []
  private var groupsHead = 0

  /// Creates a machine for a log whose records through `durableSequence` are already durable
  /// (what recovery found on disk).
  public init(durableSequence: UInt64) {
    self.writtenSequence = durableSequence
    self.durableSequence = durableSequence
    self.syncingThrough = nil
  }

  /// The number of waiters not yet completed or failed.
  public var waitingCount: Int {
    var count = 0
    for index in groupsHead..<groups.count { count += groups[index].waiters.count }
    return count
  }

  /// Reports that records through `writtenThrough` were written to the operating system, and
  /// hands over `waiters` that may be resumed once records through `through` are durable.
  ///
  /// `through` is the last sequence number the waiters' replies were decided on (their own events
  /// or earlier ones): a rejection decided against a claim that is not yet durable must not be
  /// reported before that claim is.
  public mutating func submit(_ waiters: [Waiter], through: UInt64, writtenThrough: UInt64)
    -> [Action]
  {
    precondition(through <= writtenThrough, "waiters depend on records not yet written")
    precondition(writtenThrough >= writtenSequence, "written sequence went backwards")
    if let failure {
      return waiters.isEmpty ? [] : [.fail(waiters, failure)]
    }
    writtenSequence = writtenThrough
    var actions: [Action] = []
    if !waiters.isEmpty {
      if through <= durableSequence {
        actions.append(.complete(waiters))
      } else {
        if let last = groups.last, groupsHead < groups.count {
          precondition(last.through <= through, "waiter groups out of order")
        }
        groups.append((through, waiters))
      }
    }
    if let sync = startSyncIfNeeded() { actions.append(sync) }
    return actions
  }

  /// Reports that the sync started by the last ``Action/sync(through:)`` succeeded.
  public mutating func syncSucceeded() -> [Action] {
    guard let target = syncingThrough else {
      preconditionFailure("syncSucceeded without a sync in flight")
    }
    syncingThrough = nil
    if failure != nil { return [] }
    durableSequence = max(durableSequence, target)
    var completed: [Waiter] = []
    while groupsHead < groups.count, groups[groupsHead].through <= durableSequence {
      completed.append(contentsOf: groups[groupsHead].waiters)
      groupsHead += 1
    }
    compactGroups()
    var actions: [Action] = []
    if !completed.isEmpty { actions.append(.complete(completed)) }
    if let sync = startSyncIfNeeded() { actions.append(sync) }
    return actions
  }

  /// Reports that the sync in flight failed. The store stops: every waiter is failed with the
  /// error, now and forever after. A failed sync is never retried, because after a failed
  /// `fdatasync` the kernel may have dropped the dirty pages and a retry could report success for
  /// data that is gone (the 2018 "fsyncgate" lesson).
  public mutating func syncFailed(_ error: any Error) -> [Action] {
    precondition(syncingThrough != nil, "syncFailed without a sync in flight")
    syncingThrough = nil
    return stop(error)
  }

  /// Reports that writing to the log failed (or anything else that makes the store stop).
  /// Every waiter is failed with the error, now and forever after.
  public mutating func stop(_ error: any Error) -> [Action] {
    if failure == nil { failure = error }
    let failure = self.failure!
    var failed: [Waiter] = []
    while groupsHead < groups.count {
      failed.append(contentsOf: groups[groupsHead].waiters)
      groupsHead += 1
    }
    compactGroups()
    return failed.isEmpty ? [] : [.fail(failed, failure)]
  }

  private mutating func startSyncIfNeeded() -> Action? {
    guard failure == nil, syncingThrough == nil, writtenSequence > durableSequence else {
      return nil
    }
    syncingThrough = writtenSequence
    return .sync(through: writtenSequence)
  }

  private mutating func compactGroups() {
    if groupsHead == groups.count {
      groups.removeAll(keepingCapacity: true)
      groupsHead = 0
    } else if groupsHead > 1024, groupsHead * 2 > groups.count {
      groups.removeFirst(groupsHead)
      groupsHead = 0
    }
  }
}
