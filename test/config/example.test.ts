import * as path from 'path';
import { loadConfig } from '../../src/config/load';

test('the shipped example configuration is valid', () => {
  const { config } = loadConfig(path.resolve(__dirname, '../../dicom-config/example.yaml'));
  expect(config.routes[0].destinations).toEqual(['pacs', 'orthanc-web']);
  expect(config.dimse.allowedPeers).toHaveLength(3);
});

test('the multi-node example (one worker of a Redis deployment) is valid', () => {
  const { config } = loadConfig(path.resolve(__dirname, '../../dicom-config/multi-node.example.yaml'));
  expect(config.roles).toEqual(['worker']);
  expect(config.queue).toMatchObject({ backend: 'redis', redis: { host: '10.20.1.30', port: 6379, prefix: 'stroke' }, offPeak: { start: '20:00', end: '06:00' } });
});

test('the embedded queue stays the default: no Redis unless configured', () => {
  const { config } = loadConfig(path.resolve(__dirname, '../../dicom-config/example.yaml'));
  expect(config.queue.backend).toBe('embedded');
  expect(config.roles).toEqual(['all']);
});
