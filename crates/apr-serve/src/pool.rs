//! Many calls in flight over one or several servers: a fixed number of
//! worker threads (the concurrency bound), each bound to one server in
//! turn, so the load spreads evenly across the URLs. The caller submits
//! calls under its own ids and collects them as they end, in any order.

use crate::call::{CallRequest, CallResponse};
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::protocol::Protocol;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = (u64, CallRequest);
type Done = (u64, Result<CallResponse>);

/// Calls on serving engines, many at once.
pub struct ServerPool {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    in_flight: usize,
    workers: Vec<JoinHandle<()>>,
    protocol: Arc<dyn Protocol>,
    urls: Vec<String>,
    client: HttpClient,
}

impl ServerPool {
    /// A pool of `concurrency` workers (at least one per URL) calling
    /// `protocol`'s endpoint on the servers at `urls` (such as
    /// `http://127.0.0.1:8000`) through `client`.
    pub fn new<P: Protocol>(
        protocol: P,
        urls: &[String],
        concurrency: usize,
        client: HttpClient,
    ) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::Request("no server URL".into()));
        }
        let protocol = Arc::new(protocol);
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (report, done) = channel::<Done>();
        let workers = (0..concurrency.max(urls.len()))
            .map(|w| {
                let url = format!(
                    "{}{}",
                    urls[w % urls.len()].trim_end_matches('/'),
                    protocol.path()
                );
                let (protocol, queue, report, client) = (
                    protocol.clone(),
                    queue.clone(),
                    report.clone(),
                    client.clone(),
                );
                std::thread::spawn(move || loop {
                    // The lock is held only to take one job.
                    let job = queue
                        .lock()
                        .map_err(|_| ())
                        .and_then(|q| q.recv().map_err(|_| ()));
                    let Ok((id, req)) = job else { return };
                    let got = client
                        .post_json(&url, &protocol.body(&req))
                        .and_then(|v| protocol.parse(&url, &req, &v));
                    if report.send((id, got)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Ok(ServerPool {
            jobs: Some(jobs),
            done,
            in_flight: 0,
            workers,
            protocol,
            urls: urls.to_vec(),
            client,
        })
    }

    /// The engine's name.
    pub fn name(&self) -> &'static str {
        self.protocol.name()
    }

    /// Checks every server's vocabulary against the caller's tokenization
    /// of `probe` ([`Protocol::check_vocabulary`]).
    pub fn check_vocabulary(&self, probe: &str, want: &[u32]) -> Result<()> {
        for url in &self.urls {
            self.protocol
                .check_vocabulary(&self.client, url, probe, want)?;
        }
        Ok(())
    }

    /// Loads the Hugging Face checkpoint in `dir` into every server
    /// ([`Protocol::reload_weights`]); refused while calls are in flight.
    pub fn reload_weights(&mut self, dir: &str) -> Result<()> {
        if self.in_flight > 0 {
            return Err(Error::Request(format!(
                "reloading weights with {} calls in flight",
                self.in_flight
            )));
        }
        for url in &self.urls {
            self.protocol.reload_weights(&self.client, url, dir)?;
        }
        Ok(())
    }

    /// Queues `req` under the caller's `id`.
    pub fn submit(&mut self, id: u64, req: CallRequest) -> Result<()> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::Request("pool shut down".into()))?;
        jobs.send((id, req))
            .map_err(|_| Error::Request("every worker has stopped".into()))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Calls submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Blocks until at least one call has ended and returns every ended
    /// call, each with its own outcome (a failed call does not stop the
    /// others). An error only when nothing is in flight.
    pub fn wait(&mut self) -> Result<Vec<Done>> {
        if self.in_flight == 0 {
            return Err(Error::Request("waiting with no call in flight".into()));
        }
        let first = self
            .done
            .recv()
            .map_err(|_| Error::Request("every worker has stopped".into()))?;
        let mut out = vec![first];
        out.extend(self.done.try_iter());
        self.in_flight -= out.len();
        Ok(out)
    }
}

impl Drop for ServerPool {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current call.
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
