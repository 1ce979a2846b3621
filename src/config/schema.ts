/**
 * Configuration schema. Every key is documented here, where it is defined (README's configuration
 * reference is generated from the same descriptions). Validated at start: a bad key stops the node
 * with a message naming it.
 */
import { z } from 'zod';
import { DEFAULT_LESION_POSTPROCESS as D } from '../pipelines/lesion-postprocess';
import { Condition, ROUTING_FIELDS, validateCondition, validateMatch } from '../pipelines/routing';
import { DEFAULT_ROUTE_TASKS, TASK_IDS } from '../pipelines/task-ids';

const aeTitle = z
  .string()
  .min(1)
  .max(16)
  .regex(/^[\x20-\x5b\x5d-\x7e]+$/, 'AE title: 1-16 printable characters, no backslash')
  .describe('DICOM Application Entity title');

const port = z.number().int().min(0).max(65535);

/** TLS for a listening port (DICOM PS3.15 Annex B secure transport; HTTPS). Files in PEM. */
export const ServerTlsSchema = z
  .object({
    certFile: z.string().min(1).describe("this node's certificate chain (PEM)"),
    keyFile: z.string().min(1).describe('its private key (PEM)'),
    caFile: z.string().optional().describe('CA bundle (PEM) client certificates are verified against; alone (without requireClientCert) a certificate is asked for and the result logged, not required'),
    requireClientCert: z
      .boolean()
      .default(false)
      .describe('refuse a peer without a client certificate chaining to caFile (mutual TLS; needs caFile); the AE allow-list still applies'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  })
  .strict();
export type ServerTls = z.infer<typeof ServerTlsSchema>;

/** TLS for an outgoing DIMSE association. */
export const ClientTlsSchema = z
  .object({
    caFile: z.string().optional().describe("CA bundle (PEM) the PACS's certificate must chain to (default: the system's)"),
    certFile: z.string().optional().describe('client certificate (PEM) when the PACS asks for one'),
    keyFile: z.string().optional().describe('its private key (PEM)'),
    serverName: z.string().optional().describe('name checked against the PACS certificate (default: host)'),
    rejectUnauthorized: z.boolean().default(true).describe('false only for testing: accepts any PACS certificate'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  })
  .strict();
export type ClientTls = z.infer<typeof ClientTlsSchema>;

export const AllowedPeerSchema = z
  .object({
    aeTitle: aeTitle.describe('calling AE title allowed to send to the node'),
    host: z.string().optional().describe('if set, the association must also come from this IP address'),
  })
  .strict();

export const DimseDestinationSchema = z
  .object({
    name: z.string().min(1).describe('unique destination name (used in routes, logs and the admin page)'),
    type: z.literal('dimse'),
    host: z.string().min(1).describe('PACS host name or IP'),
    port: port.describe('PACS DICOM port'),
    calledAeTitle: aeTitle.describe("PACS AE title (called AE)"),
    callingAeTitle: aeTitle.optional().describe("AE title the node presents; defaults to dimse.aeTitle"),
    overlaySc: z.boolean().default(false).describe('also send the burned-in overlay Secondary Capture series'),
    tls: ClientTlsSchema.optional().describe('DICOM TLS to this destination (PS3.15 Annex B)'),
  })
  .strict();

export const StowDestinationSchema = z
  .object({
    name: z.string().min(1),
    type: z.literal('stow'),
    url: z.string().url().describe('DICOMweb root, e.g. http://pacs:8042/dicom-web'),
    bearerToken: z.string().optional().describe('Authorization: Bearer token, if the PACS needs one'),
    overlaySc: z.boolean().default(false),
  })
  .strict();

export const DestinationSchema = z.discriminatedUnion('type', [DimseDestinationSchema, StowDestinationSchema]);
export type Destination = z.infer<typeof DestinationSchema>;
export type DimseDestination = z.infer<typeof DimseDestinationSchema>;
export type StowDestination = z.infer<typeof StowDestinationSchema>;

/** A condition of the routing language (src/pipelines/routing.ts, docs/routing.md); checked in RouteSchema's refinement. */
const conditionValue = z.custom<Condition>(() => true);

export const RouteTaskSchema = z.union([
  z.enum(TASK_IDS),
  z
    .object({
      task: z.enum(TASK_IDS).describe('task id (src/pipelines/<id>/)'),
      when: conditionValue
        .optional()
        .describe('run the task only when this holds: the routing language plus content facts, e.g. { present: ["T1C"] } (docs/routing.md)'),
    })
    .strict(),
]);
export type RouteTask = z.infer<typeof RouteTaskSchema>;

export const RouteSchema = z
  .object({
    name: z.string().min(1),
    match: z
      .object({
        calledAeTitle: aeTitle.optional().describe('only studies sent to this called AE title'),
        callingAeTitle: aeTitle.optional().describe('only studies sent by this calling AE title'),
        field: z.enum(ROUTING_FIELDS).optional().describe('a single tag condition: the field tested (with equals / in / matches / exists)'),
        equals: z.union([z.string(), z.number()]).optional(),
        in: z.array(z.union([z.string(), z.number()])).optional(),
        matches: z.string().optional().describe('case-insensitive regular expression, compiled at start-up'),
        exists: z.boolean().optional(),
        timeOfDay: z
          .object({ from: z.string(), to: z.string() })
          .strict()
          .optional()
          .describe('local time window "HH:MM"-"HH:MM", wraps midnight (from 18:00 to 07:00 is the night)'),
        all: z.array(conditionValue).optional().describe('every condition holds'),
        any: z.array(conditionValue).optional().describe('at least one condition holds'),
        not: conditionValue.optional().describe('the condition does not hold'),
      })
      .strict()
      .default({})
      .describe(
        'which studies take this route: every key must hold (an empty match takes every study). The first route in the list that matches wins. ' +
          'Tag conditions: { field: Modality | BodyPartExamined | StudyDescription | ProtocolName | SeriesDescription | RequestedProcedureDescription | InstitutionName | StationName | Manufacturer | ManufacturerModelName | calledAeTitle | callingAeTitle, equals | in | matches | exists }, ' +
          'timeOfDay, all / any / not (docs/routing.md)',
      ),
    tasks: z
      .array(RouteTaskSchema)
      .min(1)
      .default([...DEFAULT_ROUTE_TASKS])
      .describe(
        `the tasks this route runs (${TASK_IDS.join(', ')}), each a task id or { task, when }; default ${JSON.stringify(DEFAULT_ROUTE_TASKS)}, so a tumour model never runs unless a route lists brain-tumour-mr (docs/tasks.md)`,
      ),
    quietPeriodSeconds: z.number().positive().default(5).describe('hand a study on when no instance arrived for this long'),
    requiredSeries: z
      .array(z.enum(['DWI', 'ADC', 'CT']))
      .default([])
      .describe('hand on earlier when these are all present (checked by series description/type tags at arrival)'),
    destinations: z.array(z.string()).default([]).describe('destination names results are sent to'),
    priority: z.enum(['urgent', 'normal', 'research']).default('urgent'),
    models: z
      .object({
        dwiAdc: z.string().default('shaspec-realbg').describe('stroke-mr with DWI and ADC both present (shaspec-realbg 0.4.0: ShaSpec fine-tuned on lesions in real diffusion scans; dual-encoder and unet2d-baseline stay installed, one line away)'),
        singleModality: z
          .string()
          .default('shaspec-realbg')
          .describe('stroke-mr with DWI only or ADC only, and the fallback when dwiAdc is not ready (shaspec-realbg: better on lesions in real tissue; shaspec-missing 0.3.0 is better on the phantoms)'),
        ctLesion: z
          .string()
          .default('shaspec-missing')
          .describe('stroke-ct: the lesion model run on the synthetic DWI (DWI only); falls back to singleModality, then dwiAdc'),
        ctToDwi: z.string().default('ct2dwi'),
        brainTumour: z.string().default('brats-shaspec').describe('brain-tumour-mr: the FLAIR/T1/T1C/T2 segmentation model (brats-shaspec: any subset; brats-unet4: only with all four, else brats-shaspec when ready)'),
        liver: z.string().default('liver-aqcf').describe('liver-ct-mr: the liver + liver tumour model for abdominal CT or MRI (one model, modality as an input)'),
      })
      .strict()
      .default({}),
    sequences: z
      .object({
        t1ContrastFromStudyContext: z
          .boolean()
          .default(false)
          .describe(
            'MR sequence identification (src/study/README.md): a T1 series with no contrast tag is taken as T1C when the study description / requested or performed procedure names contrast AND the series says post-contrast (post, +C, gad, KM, CE) or is fat-suppressed. For sites whose scanners never write the contrast tags. Default false: T1C only on a contrast tag (a pre-contrast T1 called T1C would hide enhancing tumour)',
          ),
      })
      .strict()
      .default({})
      .describe('how series of studies on this route are identified (study/ classification)'),
  })
  .strict()
  .superRefine((r, ctx) => {
    for (const e of validateMatch(r.match, ['match'])) ctx.addIssue({ code: z.ZodIssueCode.custom, path: e.path, message: e.message });
    const seen = new Set<string>();
    r.tasks.forEach((t, i) => {
      const id = typeof t === 'string' ? t : t.task;
      if (seen.has(id)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tasks', i], message: `task "${id}" listed twice` });
      seen.add(id);
      if (typeof t !== 'string' && t.when !== undefined) {
        for (const e of validateCondition(t.when, ['tasks', i, 'when'], true)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: e.path, message: e.message });
      }
    });
  });
export type Route = z.infer<typeof RouteSchema>;

export const ConfigSchema = z
  .object({
    nodeName: z.string().default('stroke-node').describe('name written into provenance and logs'),
    storage: z
      .object({
        dir: z.string().default('./var').describe('where instances, results and the index live'),
        minFreeMb: z.number().nonnegative().default(1024).describe('refuse new data below this much free disk'),
        retentionDays: z.number().positive().default(7).describe('delete instances and results older than this, once sent'),
        fsync: z
          .boolean()
          .default(true)
          .describe('acknowledge an instance only after its file is fsynced (power-loss safe); false = once the OS has it (process-crash safe, faster)'),
      })
      .strict()
      .default({}),
    dimse: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().default('127.0.0.1').describe('interface the DICOM port binds to (not all interfaces)'),
        port: port.default(11112),
        aeTitle: aeTitle.default('STROKEAI'),
        maxAssociations: z.number().int().positive().default(16),
        allowAnyCaller: z.boolean().default(false).describe('accept any calling AE (testing only)'),
        allowedPeers: z.array(AllowedPeerSchema).default([]),
        associationTimeoutSeconds: z
          .number()
          .positive()
          .default(60)
          .describe('an accepted association silent this long is aborted'),
        artimTimeoutSeconds: z
          .number()
          .positive()
          .default(30)
          .describe('ARTIM (PS3.8 9.1.5): a connection whose A-ASSOCIATE-RQ has not arrived whole this long after connecting is closed'),
        maxPendingConnections: z
          .number()
          .int()
          .positive()
          .default(64)
          .describe('connections not yet associated (TCP open, no A-ASSOCIATE-AC yet), in total; more are closed at once'),
        maxPendingConnectionsPerIp: z
          .number()
          .int()
          .positive()
          .default(8)
          .describe('the same, per remote IP address'),
        maxAssociateRequestBytes: z
          .number()
          .int()
          .min(1024)
          .default(65536)
          .describe('largest PDU accepted before an association is accepted (an A-ASSOCIATE-RQ is a few hundred bytes)'),
        tls: ServerTlsSchema.optional().describe('DICOM TLS on the DICOM port (PS3.15 Annex B): every association then needs TLS'),
      })
      .strict()
      .default({}),
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: port.default(8080),
        stowBearerToken: z.string().optional().describe('if set, STOW-RS requires Authorization: Bearer <token>'),
        maxStowBodyMb: z.number().positive().default(4096).describe('largest STOW-RS request body; a larger one is refused with 413'),
        maxStowParts: z.number().int().positive().default(10000).describe('most parts (instances) in one STOW-RS request; more are refused with 413'),
        stowAuthFailuresPerWindow: z
          .number()
          .int()
          .positive()
          .default(20)
          .describe('wrong STOW-RS bearer tokens allowed per client IP in 15 minutes; past it 429'),
        tls: ServerTlsSchema.optional().describe('serve HTTPS instead of HTTP on http.port (STOW-RS, admin, health)'),
      })
      .strict()
      .default({}),
    admin: z
      .object({
        token: z.string().min(16).optional().describe('admin API/page token (no default: admin is disabled without one)'),
        showPatientIdentifiers: z.boolean().default(false),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        maxInstanceMb: z
          .number()
          .positive()
          .default(2048)
          .describe('largest instance accepted over either transport; a larger one is refused (C000 / 413) and its bytes not kept'),
        maxSequenceDepth: z
          .number()
          .int()
          .positive()
          .max(256)
          .default(32)
          .describe('deepest sequence nesting accepted in an instance (real objects nest < 10 levels)'),
        maxElements: z
          .number()
          .int()
          .positive()
          .default(1000000)
          .describe('most data elements (items included) in one instance'),
      })
      .strict()
      .default({})
      .describe('bounds on each received instance, checked as its bytes arrive (both transports)'),
    destinations: z.array(DestinationSchema).default([]),
    routes: z.array(RouteSchema).default([{}].map((r) => RouteSchema.parse({ name: 'default', ...r }))),
    egress: z
      .object({
        maxAttempts: z.number().int().positive().default(8),
        initialBackoffSeconds: z.number().positive().default(5),
        maxBackoffSeconds: z.number().positive().default(600),
      })
      .strict()
      .default({}),
    inference: z
      .object({
        modelsDir: z.string().default('./models'),
        executionProviders: z.array(z.enum(['cuda', 'webgpu', 'cpu'])).default(['cpu']),
        intraOpThreads: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({}),
    lesionPostprocess: z
      .object({
        brainMask: z
          .object({
            enabled: z.boolean().default(D.brainMask.enabled).describe('drop lesion voxels outside a brain mask computed on the b0 (else the trace DWI): scalp, skull, orbits, sinuses'),
            otsuFactor: z.number().positive().default(D.brainMask.otsuFactor).describe('threshold = this x the Otsu threshold of the b0 / DWI (below 1: the dark side of a coil profile stays in)'),
            openingMm: z.number().positive().default(D.brainMask.openingMm).describe('in-plane erosion that separates scalp from brain before the largest component is kept'),
            erodeMm: z.number().nonnegative().default(D.brainMask.erodeMm).describe('final in-plane erosion of the brain mask (the dura / CSF rim)'),
            minInsideFraction: z
              .number()
              .min(0)
              .max(1)
              .default(D.brainMask.minInsideFraction)
              .describe('a lesion component less than this fraction inside the brain mask is dropped, else kept whole; 0: voxels outside are cut off'),
          })
          .strict()
          .default({}),
        minComponent: z
          .object({
            enabled: z.boolean().default(D.minComponent.enabled).describe('drop 26-connected lesion components smaller than this'),
            minVolumeMl: z.number().nonnegative().default(D.minComponent.minVolumeMl).describe('smallest component kept, mL (so the rule means the same on every voxel size)'),
            minVoxels: z.number().int().nonnegative().default(D.minComponent.minVoxels).describe('and at least this many voxels'),
          })
          .strict()
          .default({}),
        restrictedDiffusion: z
          .object({
            enabled: z.boolean().default(D.restrictedDiffusion.enabled).describe('keep a lesion component only if its median ADC is low against the normal-appearing brain of the same study'),
            maxAdcRatio: z.number().positive().default(D.restrictedDiffusion.maxAdcRatio).describe('largest ratio (component median ADC / normal-brain median ADC) kept as restricted'),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({})
      .describe('false-positive control of the MR lesion mask (src/pipelines/lesion-postprocess.ts; thresholds chosen on the VAL phantoms, models/README.md)'),
    brainTumour: z
      .object({
        synthesis: z
          .object({
            enabled: z.boolean().default(true).describe('synthesise each missing FLAIR / T1 / T1C / T2 with the synthesis model and send it as a labelled SYNTHETIC series (issue 15)'),
            model: z.string().default('brats-m2dn').describe('the missing-sequence synthesis model (DDIM sampler of its manifest)'),
            steps: z.number().int().min(1).max(1000).optional().describe("DDIM steps; default the manifest's sampler.steps (its exact timesteps)"),
            budgetSeconds: z
              .number()
              .positive()
              .default(120)
              .describe('per-study time budget of the synthetic and fused series (sampling, fusion, encoding); past it the SEG/SR go out without them and the outcome and SR say so'),
            segmentWith: z
              .enum(['measured', 'acquired-only', 'with-synthesis'])
              .default('measured')
              .describe(
                'inputs of the tumour segmentation when sequences are missing: acquired-only (the model does without), with-synthesis (synthesised sequences given as present, listed as synthesised in the SR), or measured: the better route on the BraTS TEST split, from the synthesis manifest metrics.downstream.bestRoute (acquired-only when it says nothing)',
              ),
            seed: z.number().int().nonnegative().default(1).describe('seed of the initial noise (the same study gives the same synthetic images)'),
            batch: z.number().int().positive().default(16).describe('slices per ONNX call (memory bound; the result does not depend on it)'),
          })
          .strict()
          .default({}),
        enhancingWithoutT1c: z
          .enum(['count-as-core', 'report'])
          .default('count-as-core')
          .describe(
            'without an acquired post-contrast T1, enhancement cannot be seen: count-as-core (default) puts what the model called enhancing into the necrotic / non-enhancing core segment (tumour core and whole tumour unchanged) and says so in the SR and outcome; report keeps the model output as it is',
          ),
        fusion: z
          .object({
            enabled: z.boolean().default(true).describe('send one FUSED series of the acquired sequences (issue 15)'),
            model: z.string().default('brats-nslf').describe('the fusion model (voxel-wise weighted average of the acquired sequences)'),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({})
      .describe('brain-tumour-mr: synthetic missing sequences and a fused series (src/pipelines/brain-tumour-mr/synthetic-series.ts)'),
    output: z
      .object({
        manufacturer: z.string().default('Stroke AI DICOM node (open source)'),
        institutionName: z.string().optional(),
        seriesNumberBase: z.number().int().positive().default(9000),
        disclaimer: z.string().default('AI-generated result, not for clinical use without review'),
      })
      .strict()
      .default({}),
    roles: z
      .array(z.enum(['all', 'receiver', 'worker', 'sender']))
      .min(1)
      .default(['all'])
      .describe(
        'what this process does: receiver (DIMSE + STOW-RS in), worker (runs the models; one process per GPU), sender (egress: its own outbox and, on the redis queue, results handed over by worker processes), or all',
      ),
    queue: z
      .object({
        backend: z
          .enum(['embedded', 'redis'])
          .default('embedded')
          .describe('embedded: SQLite in storage.dir, one process, no external service; redis: BullMQ on Redis, several receivers and workers'),
        redis: z
          .object({
            host: z.string().default('127.0.0.1'),
            port: port.default(6379),
            password: z.string().optional(),
            db: z.number().int().nonnegative().default(0),
            prefix: z.string().min(1).default('stroke').describe('key prefix: nodes sharing a queue use the same prefix'),
          })
          .strict()
          .default({}),
        maxAttempts: z.number().int().positive().default(3).describe('tries of a failing study job before it is dead-lettered'),
        backoffSeconds: z.number().positive().default(10).describe('redis: first retry delay, doubled at each attempt'),
        lockSeconds: z
          .number()
          .positive()
          .default(30)
          .describe('redis: lease of a running job, renewed while its worker lives; a worker silent this long is presumed dead and its job handed to another'),
        offPeak: z
          .object({
            start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
            end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
          })
          .strict()
          .optional()
          .describe('local-time window in which research-priority studies run (unset: any time)'),
        workerRoutes: z
          .array(z.string())
          .optional()
          .describe('redis: routes this worker takes jobs for (default: every route whose models it has loaded)'),
      })
      .strict()
      .default({}),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    // The embedded queue lives in this process's SQLite: a process without every role would receive
    // what it never processes, or write results that nothing sends.
    const roles = new Set(cfg.roles);
    if (cfg.queue.backend === 'embedded' && !roles.has('all') && !(roles.has('receiver') && roles.has('worker') && roles.has('sender'))) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['roles'],
        message: `[${cfg.roles.join(', ')}] needs the shared queue (queue.backend: redis); with the embedded queue one process does everything (roles: [all])`,
      });
    }
    const names = new Set(cfg.destinations.map((d) => d.name));
    cfg.routes.forEach((r, i) =>
      r.destinations.forEach((d, j) => {
        if (!names.has(d)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['routes', i, 'destinations', j],
            message: `unknown destination "${d}" (defined: ${[...names].join(', ') || 'none'})`,
          });
        }
      }),
    );
  });

export type Config = z.infer<typeof ConfigSchema>;
