/// The locks that will run out, soonest first: a binary min-heap of `(expiresAt, coupon)`.
///
/// The writer pops every entry that is due at the start of each request and logs a `lockExpired`
/// event for it, so the state (and every read, and `statistics()`) never shows a lock past its
/// time. Entries are not removed when a lock ends early (unlock, redeem): the pop checks the
/// entry against `StoreState.lockExpiry` and drops it if the lock it named is gone. So that those
/// stale entries cannot pile up (100,000 locks a second, each unlocked in a second, would leave
/// 30 million entries in a 300-second window), the engine rebuilds the queue from the live locks
/// whenever it holds more than twice as many entries as there are locks (amortised O(1)).
///
/// A heap and not a FIFO per campaign (lock timeouts are per campaign, so each campaign's locks
/// expire in lock order) because the clock may step backwards, which breaks that order.
///
/// Derived data, rebuilt from `StoreState.lockExpiry` on open: not part of the stored state.
/// Owned by the writer thread, like the engine.
struct LockExpiryQueue {
  struct Entry: Comparable {
    var expiresAt: Int64
    var coupon: UInt32

    static func < (a: Entry, b: Entry) -> Bool {
      (a.expiresAt, a.coupon) < (b.expiresAt, b.coupon)
    }
  }

  private var heap: [Entry] = []

  /// A queue of the given locks (coupon → expiry).
  init(_ locks: [UInt32: Int64]) {
    heap = locks.map { Entry(expiresAt: $0.value, coupon: $0.key) }
    for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
  }

  /// The number of entries, stale ones included.
  var count: Int { heap.count }

  /// The entry due first.
  var first: Entry? { heap.first }

  mutating func insert(_ entry: Entry) {
    heap.append(entry)
    var child = heap.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard heap[child] < heap[parent] else { break }
      heap.swapAt(child, parent)
      child = parent
    }
  }

  /// Removes the entry due first; the queue must not be empty.
  mutating func removeFirst() {
    let last = heap.removeLast()
    guard !heap.isEmpty else { return }
    heap[0] = last
    siftDown(0)
  }

  private mutating func siftDown(_ start: Int) {
    var parent = start
    while true {
      let left = 2 * parent + 1
      guard left < heap.count else { return }
      var smallest = left
      if left + 1 < heap.count, heap[left + 1] < heap[left] { smallest = left + 1 }
      guard heap[smallest] < heap[parent] else { return }
      heap.swapAt(smallest, parent)
      parent = smallest
    }
  }
}
