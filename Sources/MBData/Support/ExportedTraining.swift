// The trainer-side vocabulary (Batch, Trainer, MultiBatchLoader, LoaderCheckpoint,
// PlanParameters, MBDataError…) lives in MBDataTraining; `import MBData` brings it along.
@_exported import MBDataTraining
