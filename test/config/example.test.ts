import * as path from 'path';
import { loadConfig } from '../../src/config/load';

test('the shipped example configuration is valid', () => {
  const { config } = loadConfig(path.resolve(__dirname, '../../dicom-config/example.yaml'));
  expect(config.routes[0].destinations).toEqual(['pacs', 'orthanc-web']);
  expect(config.dimse.allowedPeers).toHaveLength(3);
});
