import Testing

@testable import CouponLog

/// The group-commit state machine, driven by hand: no files, no threads.
@Suite("Group commit state machine")
struct GroupCommitTests {
  struct Failure: Error, Equatable { var reason: String }

  typealias Machine = GroupCommit<String>

  static func completed(_ actions: [Machine.Action]) -> [String] {
    actions.flatMap { action -> [String] in
      if case .complete(let waiters) = action { return waiters }
      return []
    }
  }

  static func failed(_ actions: [Machine.Action]) -> [String] {
    actions.flatMap { action -> [String] in
      if case .fail(let waiters, _) = action { return waiters }
      return []
    }
  }

  static func syncTarget(_ actions: [Machine.Action]) -> UInt64? {
    for case .sync(let through) in actions { return through }
    return nil
  }

  @Test func firstWriteStartsOneSyncAndItsSuccessCompletesTheWaiters() {
    var machine = Machine(durableSequence: 0)
    let actions = machine.submit(["a", "b"], through: 2, writtenThrough: 2)
    #expect(Self.syncTarget(actions) == 2)
    #expect(Self.completed(actions).isEmpty)
    let done = machine.syncSucceeded()
    #expect(Self.completed(done) == ["a", "b"])
    #expect(Self.syncTarget(done) == nil)
    #expect(machine.durableSequence == 2)
    #expect(machine.waitingCount == 0)
  }

  @Test func writesDuringASyncShareTheNextSync() {
    var machine = Machine(durableSequence: 10)
    #expect(Self.syncTarget(machine.submit(["a"], through: 11, writtenThrough: 11)) == 11)
    // While sync 11 is in flight, three more batches are written: no new sync starts.
    #expect(Self.syncTarget(machine.submit(["b"], through: 12, writtenThrough: 12)) == nil)
    #expect(Self.syncTarget(machine.submit(["c"], through: 13, writtenThrough: 13)) == nil)
    #expect(Self.syncTarget(machine.submit(["d"], through: 15, writtenThrough: 15)) == nil)
    let first = machine.syncSucceeded()
    #expect(Self.completed(first) == ["a"])
    // One sync covers everything written meanwhile.
    #expect(Self.syncTarget(first) == 15)
    let second = machine.syncSucceeded()
    #expect(Self.completed(second) == ["b", "c", "d"])
    #expect(Self.syncTarget(second) == nil)
  }

  @Test func aReplyDependingOnDurableRecordsCompletesAtOnce() {
    var machine = Machine(durableSequence: 7)
    // A read (or a rejection) decided when everything was already durable.
    let actions = machine.submit(["read"], through: 7, writtenThrough: 7)
    #expect(Self.completed(actions) == ["read"])
    #expect(Self.syncTarget(actions) == nil)
  }

  @Test func aReplyDependingOnAnUnsyncedRecordWaitsForItsSync() {
    var machine = Machine(durableSequence: 0)
    _ = machine.submit(["claim"], through: 1, writtenThrough: 1)
    // A rejection decided after the claim (say, sold out) must not overtake it.
    let actions = machine.submit(["soldOut"], through: 1, writtenThrough: 1)
    #expect(Self.completed(actions).isEmpty)
    #expect(Self.completed(machine.syncSucceeded()) == ["claim", "soldOut"])
  }

  @Test func failedSyncFailsEveryWaiterAndEveryLaterSubmission() {
    var machine = Machine(durableSequence: 0)
    _ = machine.submit(["a"], through: 1, writtenThrough: 1)
    _ = machine.submit(["b"], through: 2, writtenThrough: 2)
    let failedNow = machine.syncFailed(Failure(reason: "EIO"))
    #expect(Self.failed(failedNow) == ["a", "b"])
    #expect(machine.durableSequence == 0)
    let later = machine.submit(["c"], through: 2, writtenThrough: 3)
    #expect(Self.failed(later) == ["c"])
    #expect(Self.syncTarget(later) == nil)
    #expect((machine.failure as? Failure) == Failure(reason: "EIO"))
  }

  @Test func stopFailsWaitersAndKeepsTheFirstError() {
    var machine = Machine(durableSequence: 0)
    _ = machine.submit(["a"], through: 1, writtenThrough: 1)
    #expect(Self.failed(machine.stop(Failure(reason: "write"))) == ["a"])
    _ = machine.stop(Failure(reason: "second"))
    #expect((machine.failure as? Failure) == Failure(reason: "write"))
    // The sync that was in flight reports back after the stop: nothing completes.
    #expect(Self.completed(machine.syncSucceeded()).isEmpty)
    #expect(machine.durableSequence == 0)
  }

  @Test func manyBatchesCompleteInSubmissionOrder() {
    var machine = Machine(durableSequence: 0)
    var completedOrder: [String] = []
    var written: UInt64 = 0
    for round in 0..<50 {
      written += 3
      var actions = machine.submit(["w\(round)"], through: written, writtenThrough: written)
      if round % 7 == 6 || round == 49 {
        while machine.syncingThrough != nil {
          actions += machine.syncSucceeded()
          completedOrder += Self.completed(actions)
          actions = []
        }
      }
      completedOrder += Self.completed(actions)
    }
    #expect(completedOrder == (0..<50).map { "w\($0)" })
    #expect(machine.durableSequence == written)
  }
}
