// Placeholder so the package resolves: Package.swift names this test target but
// the branch this was cut from has no sources for it yet. Delete on merge.
import Testing
