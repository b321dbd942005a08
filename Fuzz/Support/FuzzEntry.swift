// What every libFuzzer entry point does: copy the input, run the target, and turn a finding into
// a trap so that libFuzzer saves the input (Fuzz/run.sh then keeps it in Fuzz/FailCases/).

import Dispatch
import Synchronization

enum FuzzEntry {
  /// Runs a synchronous target on the input; a ``FuzzFinding`` (or any error) traps.
  static func run(
    _ data: UnsafePointer<UInt8>?, _ size: Int, _ target: ([UInt8]) throws -> Void
  ) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
      try target(bytes)
    } catch {
      fatalError("\(error)")
    }
    return 0
  }

  /// Runs an asynchronous target to completion on the input, blocking the fuzzer's thread (which
  /// is not a cooperative-pool thread, so blocking it starves nothing).
  static func runAsync(
    _ data: UnsafePointer<UInt8>?, _ size: Int,
    _ target: @escaping @Sendable ([UInt8]) async throws -> Void
  ) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let done = DispatchSemaphore(value: 0)
    let failure = FailureBox()
    Task {
      do {
        try await target(bytes)
      } catch {
        failure.set("\(error)")
      }
      done.signal()
    }
    done.wait()
    if let message = failure.get() { fatalError(message) }
    return 0
  }
}

/// Carries a failure message out of the task that ran the target.
final class FailureBox: Sendable {
  private let message = Mutex<String?>(nil)
  func set(_ text: String) { message.withLock { $0 = text } }
  func get() -> String? { message.withLock { $0 } }
}
