/**
 * ai-batch-scheduler — the public entry point. Everything a user may import is listed here by
 * name; nothing else under src/ is public.
 */

// Vocabulary
export { JOB_STATES, FINAL_JOB_STATES, HOLDING_JOB_STATES } from './core/types.js';
export type {
  Allocation,
  GpuAssignment,
  JobError,
  JobErrorKind,
  JobState,
  NowSource,
  QueuedWaitReason,
  WaitReason,
} from './core/types.js';

// Errors
export { UnrecoverableError, isUnrecoverable } from './core/errors.js';

// Retry backoff
export { DEFAULT_BACKOFF, backoffDelay } from './core/backoff.js';
export type { BackoffPolicy } from './core/backoff.js';
export type { Progress } from './core/progress.js';

// Machines
export { jobMachine, jobStateOf, MAX_TIMER_DELAY_MS } from './machines/job.machine.js';
export { handlerRunner } from './actors/handler.js';
export type {
  JobContext,
  JobEmitted,
  JobEvent,
  JobHandlerInput,
  JobMachineInput,
  JobMachineSnapshot,
} from './machines/job.machine.js';
export { toMermaid, transitionTable, renderMachineDoc, eventLabel, leafStates } from './machines/diagram.js';
export type { TransitionRow } from './machines/diagram.js';

// Resources: pool and request vocabulary, validation errors, the ledger and its actor
export { InvalidJobError, UnschedulableError, InvalidPoolError } from './core/errors.js';
export type { UnknownField } from './core/errors.js';
export type {
  AdmissionLimit,
  Denial,
  GpuSpec,
  NodeSpec,
  NormalisedNode,
  PlacementPolicy,
  ResourceKind,
  ResourcePool,
  ResourceRequest,
  ResourceTotals,
  Shortage,
} from './core/resources.js';
export { ResourceLedger } from './core/ledger.js';
export type { AllocateResult, LedgerOptions, ReleaseResult } from './core/ledger.js';
export type { UnitRequest } from './core/pool.js';
export type { Headroom, Pressure } from './core/reconcile.js';
export { resourceManagerMachine } from './machines/resourceManager.machine.js';
export type {
  ResourceManagerContext,
  ResourceManagerEmitted,
  ResourceManagerEvent,
  ResourceManagerInput,
  ResourceReply,
  ResourceStats,
} from './machines/resourceManager.machine.js';

// Host detection and measurement (systeminformation, nvidia-smi)
export { detectHost, applyOverrides } from './actors/host.js';
export type { DetectHostOptions, HostDetection, SystemInformationLike } from './actors/host.js';
export { readMeasured, parseNvidiaSmiCsv } from './actors/measure.js';
export type { Measured, MeasuredGpu, ReadMeasuredOptions } from './actors/measure.js';
export { measurements } from './actors/monitor.js';
export type { MonitorOptions } from './actors/monitor.js';

// The one clock
export { createRealClock, createVirtualClock, delay, schedulerFromClock } from './runtime/clock.js';
export type { SchedulerClock, TimerId, TimerOptions, VirtualClock } from './runtime/clock.js';
export { resolvePool } from './runtime/pool.js';
export type { PoolOption } from './runtime/pool.js';

// The scheduler runtime
export { createScheduler, Scheduler } from './runtime/scheduler.js';
export type { SchedulerOptions } from './runtime/options.js';
export type { RoomOptions } from './runtime/room.js';
export type {
  BoostReport,
  BoostSignal,
  BoostSpec,
  BoostTarget,
  JobHandle,
  JobSnapshot,
  JobStopping,
  JobSubmission,
  PoolNode,
  RetiredNode,
  SchedulerEvent,
  SchedulerStats,
  ShutdownReport,
  StopReason,
} from './runtime/types.js';
export type { ShutdownOptions } from './runtime/shutdown.js';
export type { HandlerContext, JobHandler, Handlers } from './actors/handler.js';
export type { JobSpec } from './core/job-spec.js';
export { Priority, PRIORITY_NAMES } from './core/priority.js';
export type { PriorityName } from './core/priority.js';
export {
  QueueFullError,
  DuplicateJobError,
  UnknownDependencyError,
  DependencyCycleError,
  SchedulerClosedError,
  JobFailedError,
  InvalidOptionError,
} from './core/errors.js';
export { schedulerMachine } from './machines/scheduler.machine.js';

// Simulation and real traces
export { simulate } from './runtime/simulate.js';
export type {
  SimulationInput,
  SimulationJob,
  SimulationOptions,
  SimulationReport,
  SimulationJobReport,
  SimulatedJobState,
  RejectionGroup,
  DurationStats,
  DurationBreakdown,
  Utilisation,
} from './runtime/simulation-types.js';
export { parsePhilly, parsePhillyRows, readPhilly, phillyPool, phillyPriority } from './traces/philly.js';
export type { PhillyOptions, PhillyPoolOptions, PhillyRow } from './traces/philly.js';
export {
  parseAlibabaPods,
  readAlibabaPods,
  parseAlibabaNodes,
  readAlibabaNodes,
  ALIBABA_QOS_PRIORITY,
  ALIBABA_GPU_VRAM_MB,
} from './traces/alibaba.js';
export type { AlibabaPodOptions, AlibabaNodeOptions, AlibabaPods, SkippedPod } from './traces/alibaba.js';
export { TraceFormatError } from './traces/csv.js';

// Durable stores: the port a durable scheduler journals to, and its SQLite adapter
export { sqliteStore, sqliteStoreFiles } from './store/sqlite.js';
export type { SqliteStoreOptions } from './store/sqlite.js';
export type {
  JobStore,
  StoreContents,
  StoredBoost,
  StoredJob,
  StoredStatus,
  JsonValue,
} from './store/store.js';
export {
  StoreLockedError,
  StoreCorruptError,
  StoreVersionError,
  StoreWriteError,
  StoreClosedError,
} from './store/errors.js';
export type { StoreOperation } from './store/errors.js';

// Many machines on PostgreSQL (issue 17): the schema, its migrations and the database target
export { migratePostgres, checkPostgresSchema, POSTGRES_SCHEMA_VERSION } from './pg/migrations.js';
export type { PostgresConnection, PostgresMigrationResult } from './pg/migrations.js';
export { SchemaNotMigratedError } from './pg/errors.js';
export { postgresTarget, DEFAULT_POSTGRES_SCHEMA } from './pg/target.js';
export type { PostgresTarget, PostgresTargetOptions } from './pg/target.js';
export { createClient, Client } from './distributed/client.js';
export type {
  ClientOptions,
  RemoteJob,
  RemoteJobEvent,
  RemoteJobHandle,
  RemoteJobState,
  RemoteListFilter,
} from './distributed/client.js';

// The lease and fencing protocol (issue 17): hosts, attempts and their fencing tokens
export { MemoryLeaseStore } from './distributed/memory-leases.js';
export type { MemoryLeaseStoreOptions } from './distributed/memory-leases.js';
export { PgLeaseStore } from './distributed/pg-leases.js';
export type { PgLeaseStoreOptions } from './distributed/pg-leases.js';
export { MAX_LEASE_MS } from './distributed/leases.js';
export type {
  AssignRequest,
  AssignResult,
  AttemptOutcome,
  AttemptRecord,
  AttemptState,
  ExpireResult,
  HeartbeatResult,
  HostRecord,
  HostRegistration,
  HostState,
  InterruptReason,
  LeaseStore,
  LeaseToken,
  LeaveResult,
  RegisterResult,
  ReportedOutcome,
  SettleResult,
  TokenResult,
} from './distributed/leases.js';
export { createAgent, Agent } from './distributed/agent.js';
export type { AgentEvent, AgentJob, AgentJobSource, AgentOptions } from './distributed/agent.js';

// Prometheus metrics (issue 17, "Operations"; docs/metrics.md)
export { schedulerMetrics } from './metrics/scheduler-metrics.js';
export type {
  MetricsPoolNode,
  SchedulerMetrics,
  SchedulerMetricsOptions,
  SchedulerMetricsSource,
} from './metrics/scheduler-metrics.js';
export { agentMetrics } from './metrics/agent-metrics.js';
export type {
  AgentMetrics,
  AgentMetricsEvent,
  AgentMetricsOptions,
  AgentMetricsSource,
} from './metrics/agent-metrics.js';
export { leaderMetrics } from './metrics/leader-metrics.js';
export type {
  LeaderMetrics,
  LeaderMetricsEvent,
  LeaderMetricsOptions,
  LeaderMetricsSource,
} from './metrics/leader-metrics.js';
export { serveMetrics } from './metrics/http.js';
export type { MetricsServer, ServeMetricsOptions } from './metrics/http.js';
export { DEFAULT_METRICS_PREFIX } from './metrics/common.js';
export { createLeader, Leader, TYPE_RESOURCE_PREFIX } from './distributed/leader.js';
export type { LeaderEngineOptions, LeaderEvent, LeaderOptions } from './distributed/leader.js';
