import Foundation
import LoomWire
import SwiftProtobuf

/// The transfer backends a process serves travel in the RPC's HELLO as
/// opaque offers: LoomWire carries them and never reads them, so the RPC
/// knows nothing of transfer.
extension RPCConfiguration {
    /// The backends this side offers, best first.
    public var transferBackends: [Loom_Transfer_BackendOffer] {
        get { offers.compactMap { try? Loom_Transfer_BackendOffer(serializedBytes: $0) } }
        set {
            // A proto3 message with no `Any` and no required fields always encodes.
            offers = newValue.map { try! $0.serializedData() }
        }
    }
}

extension Loom_Wire_Hello {
    /// The backends the peer offers, best first. An offer this build cannot
    /// read (a newer peer's) is skipped, as an unknown backend would be.
    public var transferBackends: [Loom_Transfer_BackendOffer] {
        offers.compactMap { try? Loom_Transfer_BackendOffer(serializedBytes: $0) }
    }
}
