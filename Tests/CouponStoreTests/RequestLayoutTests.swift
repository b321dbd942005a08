import Testing

@testable import CouponStore

@Suite("Request layout")
struct RequestLayoutTests {
  @Test
  func claimRequestsAndRepliesStaySmall() {
    // Every claim's request and reply are copied between the caller's frame, the writer's queue
    // and group commit; a large case stored inline would make every claim pay for its size.
    #expect(MemoryLayout<Request>.size <= 64)
    #expect(MemoryLayout<Envelope>.size <= 80)
    #expect(MemoryLayout<Reply>.size <= MemoryLayout<ClaimResult>.size + 8)
  }
}
